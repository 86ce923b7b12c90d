//go:build tools

// Package deps pins modules the tree is about to import, so that parallel
// work does not race on go.mod. It is removed once each is imported.
package deps

import (
	_ "github.com/Microsoft/go-winio"
	_ "github.com/google/go-cmp/cmp"
	_ "github.com/shirou/gopsutil/v4/process"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/sys/unix"
	_ "google.golang.org/grpc"
)
