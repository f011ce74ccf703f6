// KFP 2.17.0: tag 2.17.0 = commit 4a3592cb2dd0a91a4652ab93893ec8beda1f3158.
// The three modules of kubeflow/pipelines are pinned to the pseudo-version of that commit
// (upstream replaces api and kubernetes_platform with ./api and ./kubernetes_platform in its
// own go.mod, so both are pinned here to the same commit).
module kfpbackend

go 1.26

require (
	github.com/kubeflow/pipelines v0.0.0-20260709152847-4a3592cb2dd0
	github.com/kubeflow/pipelines/api v0.0.0-20260709152847-4a3592cb2dd0
	github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20260709152847-4a3592cb2dd0
)

replace (
	github.com/kubeflow/pipelines/api => github.com/kubeflow/pipelines/api v0.0.0-20260709152847-4a3592cb2dd0
	github.com/kubeflow/pipelines/kubernetes_platform => github.com/kubeflow/pipelines/kubernetes_platform v0.0.0-20260709152847-4a3592cb2dd0
)
