package config

import "github.com/infrad/infrad/pkg/site"

// The site file as written: every field a string or a number, so that a malformed
// value reaches validation, where it is named with its key path. Validation turns a
// file into a Site. Subnets, hosts and records are ipam's specs, which the API takes
// too. The yaml tags are the only place the file's keys are spelled.

type file struct {
	Domain  string            `yaml:"domain"`
	DataDir string            `yaml:"data_dir"`
	API     fileAPI           `yaml:"api"`
	DNS     fileDNS           `yaml:"dns"`
	NTP     fileNTP           `yaml:"ntp"`
	DHCP    fileDHCP          `yaml:"dhcp"`
	CA      fileCA            `yaml:"ca"`
	Boot    fileBoot          `yaml:"boot"`
	SSH     fileSSH           `yaml:"ssh"`
	Subnets []site.SubnetSpec `yaml:"subnets"`
	Hosts   []site.HostSpec   `yaml:"hosts"`

	Kubernetes fileKubernetes `yaml:"kubernetes"`
	MetalLB    fileMetalLB    `yaml:"metallb"`
	Cluster    *fileCluster   `yaml:"cluster"`

	MaxDeletes *int          `yaml:"max_deletes"`
	ChangeLog  fileChangeLog `yaml:"change_log"`
}

type fileBoot struct {
	Root       string             `yaml:"root"`
	HTTPListen string             `yaml:"http_listen"`
	TFTPListen string             `yaml:"tftp_listen"`
	Profiles   []site.BootProfile `yaml:"profiles"`
}

type fileSSH struct {
	HostCertDays  *int `yaml:"host_cert_days"`
	UserCertHours *int `yaml:"user_cert_hours"`
}

type fileChangeLog struct {
	Days    *int `yaml:"days"`
	Entries *int `yaml:"entries"`
}

type fileAPI struct {
	Listen    string `yaml:"listen"`
	RateLimit *int   `yaml:"rate_limit"`
}

type fileDNS struct {
	Listen         []string          `yaml:"listen"`
	Advertise      string            `yaml:"advertise"`
	Zones          []string          `yaml:"zones"`
	Forwarders     []string          `yaml:"forwarders"`
	RecursionAllow []string          `yaml:"recursion_allow"`
	TTL            *int              `yaml:"ttl"`
	Secondaries    []string          `yaml:"secondaries"`
	TransferFrom   []string          `yaml:"transfer_from"`
	TSIGKeys       []fileTSIGKey     `yaml:"tsig_keys"`
	Records        []site.RecordSpec `yaml:"records"`
	RateLimit      *int              `yaml:"rate_limit"`
	DNSSEC         bool              `yaml:"dnssec"`
	DNSSECKSK      string            `yaml:"dnssec_ksk"`
}

type fileTSIGKey struct {
	Name      string `yaml:"name"`
	Algorithm string `yaml:"algorithm"`
	Secret    string `yaml:"secret"`
	Transfer  *bool  `yaml:"transfer"`
}

type fileNTP struct {
	Listen       []string `yaml:"listen"`
	Upstream     []string `yaml:"upstream"`
	LocalStratum *int     `yaml:"local_stratum"`
	Chronyd      string   `yaml:"chronyd"`
	MaxOffset    string   `yaml:"max_offset"`
	RateLimit    *int     `yaml:"rate_limit"`
	NTS          bool     `yaml:"nts"`
	NTSListen    []string `yaml:"nts_listen"`
}

type fileDHCP struct {
	Mode           string   `yaml:"mode"`
	Interfaces     []string `yaml:"interfaces"`
	LeaseTime      string   `yaml:"lease_time"`
	RateLimit      *int     `yaml:"rate_limit"`
	RelayRateLimit *int     `yaml:"relay_rate_limit"`
}

type fileCA struct {
	Listen       string `yaml:"listen"`
	Name         string `yaml:"name"`
	CertLifetime string `yaml:"cert_lifetime"`
	HTTP01Port   *int   `yaml:"http01_port"`
	ACMEEAB      bool   `yaml:"acme_eab"`
}
