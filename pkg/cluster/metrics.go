package cluster

import "github.com/prometheus/client_golang/prometheus"

// Collector exports the cluster as this node sees it, read from Status at scrape time.
type Collector struct{ node *Node }

// NewCollector is the node's metrics.
func NewCollector(n *Node) Collector { return Collector{node: n} }

var (
	descLeader  = prometheus.NewDesc("infrad_cluster_leader", "1 while this node is the cluster's leader.", nil, nil)
	descQuorum  = prometheus.NewDesc("infrad_cluster_quorum", "1 while this node reaches a majority of the cluster's voters and takes writes; 0 while it answers only from what it has.", nil, nil)
	descApplied = prometheus.NewDesc("infrad_cluster_applied_index", "The index of the last log entry this node applied to its store.", nil, nil)
	descUp      = prometheus.NewDesc("infrad_cluster_node_up", "1 while the node answers this node's probes (itself: 1).", []string{"node"}, nil)
	descLag     = prometheus.NewDesc("infrad_cluster_node_lag", "Log entries the node is behind the most advanced node, as this node last heard.", []string{"node"}, nil)
)

func (Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descQuorum, descApplied, descUp, descLag} {
		ch <- d
	}
}

func (c Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.node.Status()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	one := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(descLeader, one(st.Leader == st.Node))
	gauge(descQuorum, one(st.Quorum))
	for _, n := range st.Nodes {
		if n.Name == st.Node {
			gauge(descApplied, float64(n.Applied))
		}
		gauge(descUp, one(n.State != "unreachable"), n.Name)
		gauge(descLag, float64(n.Lag), n.Name)
	}
}
