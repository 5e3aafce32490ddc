// Package testkit is the one place that knows how flexblock's tests and
// benchmarks get a driver to talk to: build the binary (Build, GoBuild),
// install it as the installer and kubelet lay it out (NewPlugin, Install:
// <plugin dir>/flexblock~NAME/NAME with flexblock.json next to it), and
// call it as kubelet does (Plugin.Exec: argv[0] the installed path, the
// answer one JSON object). The root module's tests, bench/ (its own
// module, through a replace directive) and test/examples use it; it is a
// plain package, not internal/, for that reason.
package testkit
