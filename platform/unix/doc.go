// Package unix is the port broker's host on Linux and macOS: the ephemeral
// and reserved port ranges, bind probes, process lookup and exit watching.
// Other Unix systems build but report most facts as unsupported; on Windows
// the package is empty (see platform/windows).
package unix
