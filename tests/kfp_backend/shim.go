//go:build !kfp_pre215

package main

import (
	"github.com/kubeflow/pipelines/backend/src/apiserver/template"
	"github.com/kubeflow/pipelines/backend/src/v2/metadata"
)

// The 2.15+ signatures of the backend's entry points.

func newTemplate(data []byte) (template.Template, error) {
	return template.New(data, template.TemplateOptions{})
}

func runOptions(runID string) template.RunWorkflowOptions {
	return template.RunWorkflowOptions{RunID: runID}
}

func newMLMDClient(host, port string) (*metadata.Client, error) {
	return metadata.NewClient(host, port, nil)
}
