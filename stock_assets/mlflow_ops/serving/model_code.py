"""MLflow "models from code" entry point of the served model: self-contained, nothing pickled.

MLflow copies this one file into the logged model and runs it at load time, so it imports only
MLflow, NumPy and pandas (never ``stock_assets``): the model loads wherever those are, e.g. in
KServe's MLServer image (MLflow 2.19, scikit-learn 1.5, no skops), not only in the project.
The fitted pipeline travels as plain arrays (``direction_model.npz``, read with
``allow_pickle=False``, written by :mod:`stock_assets.mlflow_ops.serving.model`), the feature
order included; this file evaluates them the way scikit-learn does, operation for operation.
"""

from __future__ import annotations

from typing import Any

import mlflow.models
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class FeatureInputError(ValueError):
    """A request whose rows are not the model's features."""


def as_feature_frame(model_input: Any, columns: list[str]) -> pd.DataFrame:
    """Named rows (any column order, extra columns ignored) or positional rows of the features."""
    if isinstance(model_input, dict):  # {"inputs": {column: [values]}}
        model_input = pd.DataFrame({k: np.atleast_1d(v) for k, v in model_input.items()})
    frame = model_input if isinstance(model_input, pd.DataFrame) else None
    if frame is None:
        values = np.asarray(model_input, dtype=float)
        frame = pd.DataFrame(values.reshape(1, -1) if values.ndim == 1 else values)
    n = len(columns)
    if any(isinstance(c, str) for c in frame.columns):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise FeatureInputError(
                f"missing feature column(s) {missing}; expected the {n} features "
                f"{columns}, or {n} values per row in that order"
            )
        return frame[columns].astype(float)
    if frame.shape[1] != n:
        raise FeatureInputError(
            f"each row has {frame.shape[1]} values; expected {n}, in the order {columns}"
        )
    return pd.DataFrame(frame.to_numpy(dtype=float), columns=columns)


def _expit(x: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # what scikit-learn's losses use

    return expit(x)


def _leaves(arrays: Any, X: np.ndarray, root: int) -> np.ndarray:
    """The leaf each row reaches in the tree at ``root`` (scikit-learn's traversal: NaN follows
    ``missing_left``, otherwise ``x <= threshold`` goes left)."""
    node = np.full(len(X), root, dtype=np.int64)
    rows = np.arange(len(X))
    left, right = arrays["left"], arrays["right"]
    while True:
        active = left[node] >= 0
        if not active.any():
            return node
        at, i = node[active], rows[active]
        x = X[i, arrays["feature"][at]]
        go_left = np.where(np.isnan(x), arrays["missing_left"][at], x <= arrays["threshold"][at])
        node[active] = np.where(go_left, left[at], right[at])


class PortableClassifier:
    """A fitted ``StandardScaler -> classifier`` pipeline as arrays, evaluated with NumPy."""

    def __init__(self, path: str) -> None:
        with np.load(path, allow_pickle=False) as data:
            self.arrays = {key: data[key] for key in data.files}
        self.kind = str(self.arrays["kind"])
        self.columns = [str(c) for c in self.arrays["columns"]]

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Direction (0 or 1) and probability of 1, per row."""
        a = self.arrays
        X = frame[self.columns].to_numpy(dtype=np.float64, copy=True)
        X -= a["mean"]
        X /= a["scale"]
        if self.kind == "forest":  # mean of the trees' normalised class fractions
            X = X.astype(np.float32).astype(np.float64)
            proba = np.zeros((len(X), 2))
            for root in a["roots"]:
                proba += a["value"][_leaves(a, X, root)]
            proba /= len(a["roots"])
            return np.argmax(proba, axis=1), proba[:, 1]
        if self.kind == "logistic":  # (n, 22) @ (22, 1), as scikit-learn multiplies
            raw = (X @ a["coef"].T + a["intercept"]).reshape(-1)
        else:  # "boosting" (float32 inputs) or "hist_boosting": baseline + sum of the trees
            if self.kind == "boosting":
                X = X.astype(np.float32).astype(np.float64)
            raw = np.full(len(X), float(a["baseline"]))
            for root in a["roots"]:
                raw += a["value"][_leaves(a, X, root), 0]
        positive = raw >= 0 if self.kind == "boosting" else raw > 0
        return positive.astype(int), _expit(raw)


class DirectionModel(PythonModel):
    """Predicts tomorrow's direction (1 = up) and the probability of up."""

    # MLflow inspects `predict` when the class is defined and, finding no type hints, warns
    # that it wants some (mlflow/pyfunc/model.py, PythonModel.__init_subclass__). A type-hint
    # signature would refuse the named request forms (see
    # stock_assets/mlflow_ops/serving/model.py), so we use the switch MLflow gives its own
    # classes whose inputs type hints cannot describe.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:  # noqa: ANN001
        self.classifier = PortableClassifier(context.artifacts["model"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:  # noqa: ANN001
        from mlflow.exceptions import MlflowException

        try:
            frame = as_feature_frame(model_input, self.classifier.columns)
        except FeatureInputError as error:  # the scoring server passes this message on (400)
            raise MlflowException.invalid_parameter_value(str(error)) from error
        direction, probability_up = self.classifier.predict(frame)
        return pd.DataFrame({"direction": direction.astype(int), "probability_up": probability_up})


mlflow.models.set_model(DirectionModel())
