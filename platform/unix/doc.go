// Package unix is the port broker's host on Linux and macOS: the ephemeral
// and reserved port ranges, bind probes, process lookup and exit watching,
// process facts and trees, port holders, and signals that never reach a
// process that reused a PID. Other Unix systems build but report most
// facts as unsupported; on Windows the package is empty (see
// platform/windows).
package unix
