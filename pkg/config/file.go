package config

// The site file as written: every field a string or a number, so that a malformed
// value reaches validation, where it is named with its key path. Validation turns a
// file into a Site. The yaml tags are the only place the file's keys are spelled.

type file struct {
	Domain  string       `yaml:"domain"`
	DataDir string       `yaml:"data_dir"`
	API     fileAPI      `yaml:"api"`
	DNS     fileDNS      `yaml:"dns"`
	NTP     fileNTP      `yaml:"ntp"`
	DHCP    fileDHCP     `yaml:"dhcp"`
	CA      fileCA       `yaml:"ca"`
	Subnets []fileSubnet `yaml:"subnets"`
	Hosts   []fileHost   `yaml:"hosts"`
}

type fileAPI struct {
	Listen string `yaml:"listen"`
}

type fileDNS struct {
	Listen         []string      `yaml:"listen"`
	Zones          []string      `yaml:"zones"`
	Forwarders     []string      `yaml:"forwarders"`
	RecursionAllow []string      `yaml:"recursion_allow"`
	TTL            *int          `yaml:"ttl"`
	Secondaries    []string      `yaml:"secondaries"`
	TSIGKeys       []fileTSIGKey `yaml:"tsig_keys"`
	Records        []fileRecord  `yaml:"records"`
}

type fileTSIGKey struct {
	Name      string `yaml:"name"`
	Algorithm string `yaml:"algorithm"`
	Secret    string `yaml:"secret"`
}

type fileRecord struct {
	Name  string `yaml:"name"`
	Type  string `yaml:"type"`
	Value string `yaml:"value"`
	TTL   *int   `yaml:"ttl"`
}

type fileNTP struct {
	Listen       []string `yaml:"listen"`
	Upstream     []string `yaml:"upstream"`
	LocalStratum *int     `yaml:"local_stratum"`
}

type fileDHCP struct {
	Interfaces []string `yaml:"interfaces"`
	LeaseTime  string   `yaml:"lease_time"`
}

type fileCA struct {
	Listen       string `yaml:"listen"`
	Name         string `yaml:"name"`
	CertLifetime string `yaml:"cert_lifetime"`
}

type fileSubnet struct {
	Name    string      `yaml:"name"`
	CIDR    string      `yaml:"cidr"`
	Gateway string      `yaml:"gateway"`
	Purpose string      `yaml:"purpose"`
	Ranges  []fileRange `yaml:"ranges"`
	Comment string      `yaml:"comment"`
}

type fileRange struct {
	Kind  string `yaml:"kind"`
	Name  string `yaml:"name"`
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

type fileHost struct {
	Name    string `yaml:"name"`
	IP      string `yaml:"ip"`
	MAC     string `yaml:"mac"`
	Role    string `yaml:"role"`
	Comment string `yaml:"comment"`
}
