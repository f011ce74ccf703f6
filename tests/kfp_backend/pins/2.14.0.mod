// KFP 2.14.0: tag 2.14.0 = commit 38c49cc125db4000e4986e65144532b78addabe0.
// The three modules of kubeflow/pipelines are pinned to the pseudo-version of that commit
// (upstream replaces api and kubernetes_platform with ./api and ./kubernetes_platform in its
// own go.mod, so both are pinned here to the same commit).
module kfpbackend

go 1.24.2

require (
	github.com/kubeflow/pipelines v0.0.0-20250805154551-38c49cc125db
	github.com/kubeflow/pipelines/api v0.0.0-20250805154551-38c49cc125db
	github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20250805154551-38c49cc125db
)

replace (
	github.com/kubeflow/pipelines/api => github.com/kubeflow/pipelines/api v0.0.0-20250805154551-38c49cc125db
	github.com/kubeflow/pipelines/kubernetes_platform => github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20250805154551-38c49cc125db
)
