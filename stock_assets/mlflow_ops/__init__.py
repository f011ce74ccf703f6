"""MLflow operations outside the Dagster graph: registry, run logging, serving, tracking server."""
