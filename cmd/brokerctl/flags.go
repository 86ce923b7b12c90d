package main

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
)

// durationFlag is a non-negative duration that remembers whether it was
// given.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Type() string { return "duration" }

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("must be a non-negative duration such as 5s, not %q", s)
	}
	f.d, f.set = d, true
	return nil
}

// proto is the flag as a request field: unset when not given.
func (f *durationFlag) proto() *durationpb.Duration {
	if !f.set {
		return nil
	}
	return durationpb.New(f.d)
}
