// Command kfpbackend runs the Kubeflow Pipelines backend's own packages, at the version this
// binary was built with (pins/<version>.mod), over what the exporter emits:
//
//	kfpbackend compile PIPELINE_YAML WORKFLOW_JSON  # the API server's run creation
//	kfpbackend replay PIPELINE_YAML                 # run states through metadata.Client
//
// Every failure is one line on stderr and exit status 1.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	// glog (used by the backend) registers its flags on the default set; keep them quiet.
	_ = flag.CommandLine.Parse([]string{"-logtostderr=false", "-stderrthreshold=FATAL"})
	if len(os.Args) < 2 {
		fail("usage: kfpbackend compile PIPELINE_YAML WORKFLOW_JSON | replay PIPELINE_YAML")
	}
	var err error
	switch os.Args[1] {
	case "compile":
		if len(os.Args) != 4 {
			fail("usage: kfpbackend compile PIPELINE_YAML WORKFLOW_JSON")
		}
		err = compileFile(os.Args[2], os.Args[3])
	case "replay":
		if len(os.Args) != 3 {
			fail("usage: kfpbackend replay PIPELINE_YAML")
		}
		err = replayAll(os.Stdout, os.Args[2])
	default:
		fail(fmt.Sprintf("unknown command %q (expected compile or replay)", os.Args[1]))
	}
	if err != nil {
		fail(err.Error())
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}
