// Command k8s is one multi-call binary holding the Kubernetes components the
// test cluster runs: kube-apiserver, kube-controller-manager, kube-scheduler,
// kubelet and kubectl, built from the pinned k8s.io/kubernetes module (one
// link instead of five: 133 MB against 413 MB, and one build cache).
//
// The component is the program name (a symlink named kubelet -> k8s) or, when
// called as k8s, the first argument: `k8s kubectl get pods`.
//
// It is its own Go module so Kubernetes never enters flexblock's dependency
// graph.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	_ "time/tzdata" // CronJob time zones, as kube-apiserver's own main

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format, as every component's main
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client metrics, as every component's main
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric, as every component's main
	kubectl "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// components maps a program name to what that component's own main does.
var components = map[string]func(args []string) int{
	"kube-apiserver":          func([]string) int { return cli.Run(apiserver.NewAPIServerCommand()) },
	"kube-controller-manager": func([]string) int { return cli.Run(controllermanager.NewControllerManagerCommand()) },
	"kube-scheduler":          func([]string) int { return cli.Run(scheduler.NewSchedulerCommand()) },
	"kubelet":                 func([]string) int { return cli.Run(kubelet.NewKubeletCommand(context.Background())) },
	"kubectl":                 runKubectl,
}

// runKubectl is cmd/kubectl's main: verbosity is read before the command
// is built, and errors print the way kubectl prints them.
func runKubectl(args []string) int {
	_, _ = logs.GlogSetter(kubectl.GetLogVerbosity(args))
	if err := cli.RunNoErrOutput(kubectl.NewDefaultKubectlCommand()); err != nil {
		kubectlutil.CheckErr(err) // exits
	}
	return 0
}

func main() {
	name := filepath.Base(os.Args[0])
	if _, ok := components[name]; !ok && len(os.Args) > 1 {
		// `k8s COMPONENT ARGS...`: the components read os.Args themselves
		// (cobra), so the component name is taken out of it.
		name = os.Args[1]
		os.Args = append([]string{name}, os.Args[2:]...)
	}
	run, ok := components[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "k8s: unknown component %q; call as (or with the first argument) one of: %v\n", name, names())
		os.Exit(2)
	}
	os.Exit(run(os.Args))
}

func names() []string {
	var out []string
	for n := range components {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
