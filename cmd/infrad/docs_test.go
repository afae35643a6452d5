package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/infrad/infrad/internal/testenv"
	"github.com/infrad/infrad/pkg/config"
)

// A fence is one fenced block of a Markdown page: its info string (```sh run: "sh"
// and "run"), its text (without the indentation of a block in a list), and the line
// it starts on.
type fence struct {
	lang, info string
	text       string
	line       int
	indent     int
	section    string // the "## " heading it is under
	page       string // the file's name
}

func fences(t *testing.T, path string) []fence {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fence
	var cur *fence
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			lang, info, _ := strings.Cut(strings.TrimPrefix(trimmed, "```"), " ")
			cur = &fence{lang: lang, info: info, line: n, indent: len(line) - len(trimmed), section: section, page: filepath.Base(path)}
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cut := min(cur.indent, len(line)-len(trimmed))
			cur.text += line[cut:] + "\n"
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// demoDir is a directory laid out as the repository is after make run, for commands
// written to run there: bin/infrad, deploy/, and data/ once the demo site serves.
func demoDir(t *testing.T) string {
	t.Helper()
	needDemoPort(t)
	dir := t.TempDir()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"bin/infrad": binary, "deploy": filepath.Join(repo, "deploy")} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	start(t, dir, "serve")
	waitReady(t, "http://127.0.0.1:8080")
	return dir
}

// runBlock runs a sh block in dir with bash, after the exports of the blocks before it.
func runBlock(t *testing.T, dir, exports string, b fence) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", exports+b.text)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("line %d: %v\n%s\n%s", b.line, err, b.text, out)
	}
	return string(out)
}

// exportsOf is the export lines of a block, for the blocks after it.
func exportsOf(text string) string {
	var out string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "export ") {
			out += l + "\n"
		}
	}
	return out
}

// checkOutput says which lines of an output block out does not hold.
func checkOutput(t *testing.T, out string, want fence) {
	t.Helper()
	for _, l := range strings.Split(strings.TrimSpace(want.text), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(out, l) {
			t.Errorf("line %d: the output has no %q:\n%s", want.line, l, out)
		}
	}
}

// TestWalkThrough runs README's five minutes as a newcomer would after make run, and
// checks each output block against what the commands before it printed.
func TestWalkThrough(t *testing.T) {
	testenv.Need(t, "curl", "dig")
	var blocks []fence
	for _, b := range fences(t, "../../README.md") {
		if strings.HasPrefix(b.section, "Five minutes") {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) < 4 {
		t.Fatalf("README's five minutes: got %d blocks, want the walk-through's", len(blocks))
	}
	runBlocks(t, demoDir(t), blocks)
}

// runBlocks runs the sh blocks in dir, in order, each after the exports of those
// before it, and checks each output block against what the sh block before it printed.
func runBlocks(t *testing.T, dir string, blocks []fence) {
	t.Helper()
	exports, out := "", ""
	for _, b := range blocks {
		t.Logf("%s:%d: %s", b.page, b.line, b.lang)
		switch b.lang {
		case "sh":
			out = runBlock(t, dir, exports, b)
			exports += exportsOf(b.text)
		case "output":
			checkOutput(t, out, b)
		default:
			t.Errorf("%s:%d: a %q block among those run, which are sh and output", b.page, b.line, b.lang)
		}
	}
}

// siteBase is what a page's site-file snippet is added to when it is not a whole
// site (it has no domain): a domain, and the subnet the pages' examples live in.
const siteBase = `domain: k8s.example.com
subnets:
  - {name: vm, cidr: 10.0.40.0/24, gateway: 10.0.40.1}
`

// infradLine matches a command line of infrad in a sh block: its command, and the
// rest of its line.
var infradLine = regexp.MustCompile(`(?:^|[\s(|;&])(?:bin/)?infrad\s+([a-z-]+)([^|;&#)\n]*)`)

// TestDocsExamples checks every page's examples: each yaml block is a site file (or a
// part of one, added to siteBase) that validates; each infrad command line in a sh
// block names a command and flags that exist; and each sh block marked "run" runs
// against the demo site, its output block checked as the walk-through's are.
func TestDocsExamples(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no pages in docs/: %v", err)
	}
	pages = append(pages, "../../README.md")
	helps := map[string]string{}
	help := func(cmd string) string {
		if h, ok := helps[cmd]; ok {
			return h
		}
		out, _ := exec.Command(binary, cmd, "-h").CombinedOutput()
		helps[cmd] = string(out)
		return helps[cmd]
	}
	var runs []fence
	for _, page := range pages {
		name := filepath.Base(page)
		blocks := fences(t, page)
		for i, b := range blocks {
			at := fmt.Sprintf("%s:%d", name, b.line)
			switch b.lang {
			case "yaml":
				text := b.text
				var top map[string]any
				if err := yaml.Unmarshal([]byte(text), &top); err != nil {
					t.Errorf("%s: not YAML: %v", at, err)
					continue
				}
				if _, whole := top["domain"]; !whole {
					text = siteBase + text
					if _, ok := top["subnets"]; ok {
						text = "domain: k8s.example.com\n" + b.text
					}
				}
				if _, err := config.Parse(at, []byte(text)); err != nil {
					t.Errorf("%s: the example is no valid site file: %v", at, err)
				}
			case "sh":
				for _, m := range infradLine.FindAllStringSubmatch(b.text, -1) {
					cmd, rest := m[1], m[2]
					h := help(cmd)
					if strings.Contains(h, "unknown command") {
						t.Errorf("%s: infrad %s: no such command", at, cmd)
						continue
					}
					for _, flag := range regexp.MustCompile(`(?:^|\s)--?([a-z][a-z0-9-]*)`).FindAllStringSubmatch(rest, -1) {
						if !strings.Contains(h, "-"+flag[1]+" ") && !strings.Contains(h, "-"+flag[1]+"\n") {
							t.Errorf("%s: infrad %s has no flag -%s", at, cmd, flag[1])
						}
					}
				}
				if b.info == "run" && name != "README.md" {
					runs = append(runs, b)
					if i+1 < len(blocks) && blocks[i+1].lang == "output" {
						runs = append(runs, blocks[i+1])
					}
				}
			}
		}
	}
	if len(runs) == 0 {
		return
	}
	testenv.Need(t, "curl", "dig")
	runBlocks(t, demoDir(t), runs)
}
