package config

import (
	"fmt"
	"net/netip"

	"github.com/infrad/infrad/pkg/site"
)

// Cluster is the boxes one site runs on (DESIGN.md, "Two or three boxes"). Without a
// cluster key the site runs on one box.
type Cluster struct {
	Port  uint16 // node to node: Raft and forwarded writes, mutual TLS
	Nodes []Node
}

// Node is one box of the cluster.
type Node struct {
	Name    string
	Address netip.Addr
	Witness bool // votes, serves nothing
}

// DefaultClusterPort is the port nodes talk to each other on.
const DefaultClusterPort = 7443

// Node is the node called name, if the cluster has it.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Serving is the nodes that serve, witnesses left out, in the file's order.
func (c *Cluster) Serving() []Node {
	var out []Node
	for _, n := range c.Nodes {
		if !n.Witness {
			out = append(out, n)
		}
	}
	return out
}

type fileCluster struct {
	Port  *int       `yaml:"port"`
	Nodes []fileNode `yaml:"nodes"`
}

type fileNode struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	Witness bool   `yaml:"witness"`
}

func (v *validator) cluster(f *fileCluster) *Cluster {
	if f == nil {
		return nil
	}
	c := &Cluster{Port: DefaultClusterPort}
	if p := f.Port; p != nil {
		if *p < 1 || *p > 65535 {
			v.errorf("cluster.port", "%d is not a port from 1 to 65535", *p)
		} else {
			c.Port = uint16(*p)
		}
	}
	if len(f.Nodes) == 0 {
		v.errorf("cluster.nodes", "a cluster needs its nodes: two boxes and a witness, or three boxes")
	}
	names, addrs := map[string]int{}, map[netip.Addr]int{}
	serving := 0
	for i, fn := range f.Nodes {
		at := fmt.Sprintf("cluster.nodes[%d]", i)
		n := Node{Name: fn.Name, Witness: fn.Witness}
		if err := site.CheckHostname(fn.Name); err != nil {
			v.errorf(at+".name", "%q is not a node name: one DNS label, such as infra1", fn.Name)
		} else if j, dup := names[fn.Name]; dup {
			v.errorf(at+".name", "%q is the name of cluster.nodes[%d] too", fn.Name, j)
		}
		names[fn.Name] = i
		if fn.Address == "" {
			v.errorf(at+".address", "the node needs the address the other nodes reach it at")
		} else if n.Address = v.addr(at+".address", fn.Address); n.Address.IsValid() {
			if j, dup := addrs[n.Address]; dup {
				v.errorf(at+".address", "%s is the address of cluster.nodes[%d] too", n.Address, j)
			}
			addrs[n.Address] = i
		}
		if !n.Witness {
			serving++
		}
		c.Nodes = append(c.Nodes, n)
	}
	if len(f.Nodes) > 0 && serving == 0 {
		v.errorf("cluster.nodes", "every node is a witness: at least one must serve")
	}
	return c
}
