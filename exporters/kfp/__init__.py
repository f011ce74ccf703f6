"""Export a Dagster asset graph to a Kubeflow Pipelines ``pipeline.yaml``.

Kept import-free: KFP tasks import :mod:`exporters.kfp.runtime` and should not pay for the
compiler.
"""
