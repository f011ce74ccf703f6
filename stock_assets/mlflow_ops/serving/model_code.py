"""MLflow "models from code" entry point of the served model (no pickled Python object).

MLflow copies this file into the logged model and runs it at load time; it only names the
model class, which lives in :mod:`stock_assets.mlflow_ops.serving.model`.
"""

import mlflow.models

from stock_assets.mlflow_ops.serving.model import DirectionModel

mlflow.models.set_model(DirectionModel())
