"""The model the registry holds and ``make serve`` serves: the fitted pipeline behind a thin
pyfunc that accepts both request forms and answers direction and probability.

Why the served version has no MLflow signature (MLflow 3.17):

- a column signature naming the 22 features makes schema enforcement turn the reference pipeline's
  positional ``{"inputs": [[22 numbers]]}`` into columns ``0..21`` and refuse them as missing
  inputs (``mlflow/models/utils.py``, ``_enforce_schema``);
- a signature from type hints on ``predict`` (what MLflow's warning suggests) makes the scoring
  server refuse every request without an ``inputs`` key, i.e. ``dataframe_records`` and
  ``dataframe_split`` (``mlflow/pyfunc/scoring_server/__init__.py``, ``_parse_json_data``).

So this wrapper checks the rows itself, by name when the columns are named (any order) and by
position otherwise, and the schema is written where people look for it instead: in the
registered version's description and in the model's metadata
(:mod:`stock_assets.mlflow_ops.serving.schema`). The sklearn-flavour model with the named
signature is still logged to every run.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from stock_assets.core.features import FEATURE_COLUMNS


class FeatureInputError(ValueError):
    """A request whose rows are not the 22 features."""


def as_feature_frame(model_input: Any) -> pd.DataFrame:
    """Named rows (any column order, extra columns ignored) or positional rows of 22 values."""
    if isinstance(model_input, dict):  # {"inputs": {column: [values]}}
        model_input = pd.DataFrame({k: np.atleast_1d(v) for k, v in model_input.items()})
    frame = model_input if isinstance(model_input, pd.DataFrame) else None
    if frame is None:
        values = np.asarray(model_input, dtype=float)
        frame = pd.DataFrame(values.reshape(1, -1) if values.ndim == 1 else values)
    named = [c for c in frame.columns if isinstance(c, str)]
    if named:
        missing = [c for c in FEATURE_COLUMNS if c not in frame.columns]
        if missing:
            raise FeatureInputError(
                f"missing feature column(s) {missing}; expected the 22 features "
                f"{FEATURE_COLUMNS}, or 22 values per row in that order"
            )
        return frame[FEATURE_COLUMNS].astype(float)
    if frame.shape[1] != len(FEATURE_COLUMNS):
        raise FeatureInputError(
            f"each row has {frame.shape[1]} values; expected 22, in the order {FEATURE_COLUMNS}"
        )
    return pd.DataFrame(frame.to_numpy(dtype=float), columns=FEATURE_COLUMNS)


class DirectionModel(mlflow.pyfunc.PythonModel):
    """Predicts tomorrow's direction (1 = up) and the probability of up."""

    # MLflow inspects `predict` when the class is defined and, finding no type hints, warns
    # that it wants some (mlflow/pyfunc/model.py, PythonModel.__init_subclass__; its warning
    # filter overrides ours). A type-hint signature would refuse the named request forms (see
    # the module docstring), so we use the switch MLflow gives its own classes whose inputs
    # type hints cannot describe.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:  # noqa: ANN001
        import mlflow.sklearn

        self.pipeline = mlflow.sklearn.load_model(context.artifacts["pipeline"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:  # noqa: ANN001
        from mlflow.exceptions import MlflowException

        try:
            frame = as_feature_frame(model_input)
        except FeatureInputError as error:  # the scoring server passes this message on (400)
            raise MlflowException.invalid_parameter_value(str(error)) from error
        up = list(self.pipeline.classes_).index(1)
        return pd.DataFrame(
            {
                "direction": self.pipeline.predict(frame).astype(int),
                "probability_up": self.pipeline.predict_proba(frame)[:, up],
            }
        )
