package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// shape walks a parsed YAML tree beside the file struct. It records the line of every
// key path, and reports what the decoder would otherwise refuse without a key path or
// accept silently: unknown keys, and values of the wrong kind.
type shape struct {
	file  string
	lines lines
	errs  Errors
	bad   []string // paths with a shape error: validation mistakes at or under them are noise
}

func newShape(file string) *shape {
	return &shape{file: file, lines: lines{}}
}

func (s *shape) errorf(n *yaml.Node, path, format string, args ...any) {
	s.errs = append(s.errs, Error{File: s.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
	s.bad = append(s.bad, path)
}

// walk checks n against t, the Go type it will be decoded into.
func (s *shape) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if _, seen := s.lines[path]; !seen {
		s.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value: the default applies
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			s.errorf(n, path, "want a mapping of keys, got %s", describe(n))
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			at := join(path, key.Value)
			f, ok := fields[key.Value]
			if !ok {
				s.errorf(key, at, "unknown key %q (known keys here: %s)", key.Value, knownKeys(t))
				continue
			}
			s.lines[at] = key.Line
			s.walk(val, f.Type, at)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			s.errorf(n, path, "want a list, got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			s.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			s.errorf(n, path, "want a single value, got %s", describe(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode {
			s.errorf(n, path, "want a whole number, got %s", describe(n))
		} else if _, err := strconv.Atoi(n.Value); err != nil {
			s.errorf(n, path, "%q is not a whole number", n.Value)
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			s.errorf(n, path, "want true or false, got %s", describe(n))
		}
	default:
		panic(fmt.Sprintf("config: the file struct holds a %s, which shape does not know", t))
	}
}

// lines maps each key path of a file to the line of its key (or list item).
type lines map[string]int

// line returns the line of path, or of its nearest ancestor in the file.
func (ls lines) line(path string) int {
	for path != "" {
		if l, ok := ls[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	return strconv.Quote(n.Value)
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	fields := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		fields[name] = f
	}
	return fields
}

func knownKeys(t reflect.Type) string {
	var names []string
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}
