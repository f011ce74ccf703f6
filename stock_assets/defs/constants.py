"""Names shared by the Dagster definitions."""

#: The asset group of the whole graph; the KFP exporter names the pipeline after it.
GROUP_NAME = "stock_prediction"
