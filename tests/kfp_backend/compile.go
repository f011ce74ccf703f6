package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/kubeflow/pipelines/backend/src/apiserver/config/proxy"
	"github.com/kubeflow/pipelines/backend/src/apiserver/model"
)

// RunID is the run id given to every compiled run (the API server's own is a UUID).
const RunID = "00000000-0000-4000-8000-000000000001"

// compileFile creates a run of the pipeline in path as the API server does
// (backend/src/apiserver/template: New, then RunWorkflow with the Argo compiler) and writes
// the Argo workflow it would submit, as JSON, to out.
func compileFile(path, out string) error {
	proxy.InitializeConfig("", "", "") // an API server without HTTP proxy settings
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %v", path, err)
	}
	tmpl, err := newTemplate(data)
	if err != nil {
		return fmt.Errorf("%s: the backend rejects the pipeline: %s", path, oneLine(err))
	}
	run := &model.Run{UUID: RunID, DisplayName: "conformance"}
	spec, err := tmpl.RunWorkflow(run, runOptions(RunID))
	if err != nil {
		return fmt.Errorf("%s: the backend cannot create a run: %s", path, oneLine(err))
	}
	if err := os.WriteFile(out, []byte(spec.ToStringForStore()), 0o644); err != nil {
		return fmt.Errorf("%s: %v", out, err)
	}
	return nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
