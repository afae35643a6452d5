package config

import _ "embed"

//go:embed demo.yaml
var demoYAML []byte

// DemoFile names the demo site in messages and in Site.Source.
const DemoFile = "(demo site)"

// Demo returns the built-in demo site of DESIGN.md: domain lab.internal, data in
// ./data, every listener on loopback and an unprivileged port, DHCP idle.
func Demo() *Site {
	s, err := Parse(DemoFile, demoYAML)
	if err != nil {
		panic("config: the embedded demo site is invalid: " + err.Error())
	}
	return s
}

// DemoYAML returns the demo site file, a starting point for a site of one's own.
func DemoYAML() []byte { return demoYAML }
