"""What the served model takes and returns, written where MLflow would show a signature.

The served model cannot carry an MLflow signature (see
:mod:`stock_assets.mlflow_ops.serving.model`), so its schema goes into the registered
version's description (:func:`schema_description`) and the logged model's metadata
(:data:`SERVING_METADATA`). Pure data: importing this module does not import MLflow.
"""

from __future__ import annotations

from stock_assets.core.features import FEATURE_COLUMNS

OUTPUT_COLUMNS = {
    "direction": ("long", "1 = up tomorrow, 0 = down"),
    "probability_up": ("double", "probability of up, in [0, 1]"),
}

# The schema MLflow would show for a signature, in MLflow's own format, kept in the MLmodel's
# metadata (the registry UI shows a version's signature, which this model cannot have).
SERVING_METADATA = {
    "schema": {
        "inputs": [{"name": name, "type": "double"} for name in FEATURE_COLUMNS],
        "outputs": [{"name": name, "type": kind} for name, (kind, _) in OUTPUT_COLUMNS.items()],
    },
    "request_forms": [
        "dataframe_records / dataframe_split / inputs as {column: values}: the 22 features "
        "by name, any order",
        "inputs as rows: 22 values per row, in the order of schema.inputs",
    ],
}


def schema_description() -> str:
    """Markdown for the registered version: what to send, what comes back, and why no
    signature is shown above it."""
    inputs = ", ".join(f"`{name}`" for name in FEATURE_COLUMNS)
    outputs = "; ".join(
        f"`{name}` ({kind}: {meaning})" for name, (kind, meaning) in OUTPUT_COLUMNS.items()
    )
    return (
        "Next-day direction of a stock from its 22 technical indicators (the `features` "
        "asset of stock_assets).\n\n"
        f"**Inputs**: one row per ticker and day, 22 doubles: {inputs}. Send them named, in any "
        "order (`dataframe_records`, `dataframe_split`, or `inputs` as columns), or as "
        "positional rows of 22 values in this order (`inputs`: [[...]]).\n\n"
        f"**Outputs** per row: {outputs}.\n\n"
        "The version shows no MLflow signature on purpose: a named signature would refuse the "
        "positional rows, and a type-hint signature would refuse `dataframe_records` and "
        "`dataframe_split`. The model checks the 22 features itself (HTTP 400 naming what is "
        "missing); the same schema is in the model's metadata (MLmodel)."
    )
