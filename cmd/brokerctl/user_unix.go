//go:build unix

package main

import (
	"os"
	"strconv"
)

// currentUser is this user as the broker reports process owners: the uid.
func currentUser() string { return strconv.Itoa(os.Getuid()) }
