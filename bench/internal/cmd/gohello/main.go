// Command gohello prints init's answer and nothing else: the cost of
// starting any Go program, the floor under which a Go driver cannot go.
package main

import "os"

func main() {
	os.Stdout.WriteString(`{"status":"Success","capabilities":{"attach":false,"selinuxRelabel":true,"supportsMetrics":false,"fsGroup":true,"requiresFSResize":true}}` + "\n")
}
