"""What the launcher (:mod:`.server`) and each uvicorn worker (:mod:`.app`) must agree on.

The launcher checks the model exists and writes the workers' environment; each worker reads it
back. Both need the default model URI and the request size limit with its environment variable,
so those live here: kept in either module, the two would import each other.
"""

from __future__ import annotations

from stock_assets.mlflow_ops.registry import PRODUCTION_ALIAS, REGISTERED_MODEL_NAME

__all__ = ["MAX_BYTES_ENV", "MAX_REQUEST_BYTES", "MODEL_URI"]

#: The model served unless ``--model-version`` pins one: whatever the alias names.
MODEL_URI = f"models:/{REGISTERED_MODEL_NAME}@{PRODUCTION_ALIAS}"
#: The largest request body accepted: 1 MiB, about 4,000 rows of 22 features.
MAX_REQUEST_BYTES = 1024 * 1024
MAX_BYTES_ENV = "STOCK_SERVE_MAX_REQUEST_BYTES"
