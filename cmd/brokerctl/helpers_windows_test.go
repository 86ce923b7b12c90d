package main

import (
	"fmt"
	"os"
)

// helper modes are Unix only: see helpers_unix_test.go.
func helper(mode string) int {
	fmt.Fprintf(os.Stderr, "helper mode %q needs Unix\n", mode)
	return 2
}
