// Command etcd runs etcd's server entry point; see scripts/k8s/pin.sh.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
