package main

import (
	"os"

	"golang.org/x/sys/windows"
)

// isTerminal reports whether f is a console that shows ANSI colours,
// turning on their processing where the console allows it.
func isTerminal(f *os.File) bool {
	h := windows.Handle(f.Fd())
	var mode uint32
	if windows.GetConsoleMode(h, &mode) != nil {
		return false
	}
	return windows.SetConsoleMode(h, mode|windows.ENABLE_VIRTUAL_TERMINAL_PROCESSING) == nil
}
