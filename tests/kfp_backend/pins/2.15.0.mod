// KFP 2.15.0: tag 2.15.0 = commit 8fe8d7bdd88f027bde080f619762a0b3294796db.
// The three modules of kubeflow/pipelines are pinned to the pseudo-version of that commit
// (upstream replaces api and kubernetes_platform with ./api and ./kubernetes_platform in its
// own go.mod, so both are pinned here to the same commit).
module kfpbackend

go 1.24.7

require (
	github.com/kubeflow/pipelines v0.0.0-20251125164028-8fe8d7bdd88f
	github.com/kubeflow/pipelines/api v0.0.0-20251125164028-8fe8d7bdd88f
	github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20251125164028-8fe8d7bdd88f
)

replace (
	github.com/kubeflow/pipelines/api => github.com/kubeflow/pipelines/api v0.0.0-20251125164028-8fe8d7bdd88f
	github.com/kubeflow/pipelines/kubernetes_platform => github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20251125164028-8fe8d7bdd88f
)
