"""The model the registry holds, ``make serve`` and KServe serve: the fitted pipeline written as
plain arrays for the self-contained pyfunc of :mod:`stock_assets.mlflow_ops.serving.model_code`.

Why arrays, not the scikit-learn object: the served model must load outside the project, in
KServe's MLServer image (``seldonio/mlserver:1.7.1``: MLflow 2.19, scikit-learn 1.5.2, NumPy
1.26, no skops; MLServer does not install a model's requirements). That image can read neither
MLflow 3's skops format nor, safely, a pickle of scikit-learn 1.9 objects. The arrays (an
``.npz`` loaded with ``allow_pickle=False``) hold numbers and strings only, and
``model_code.py`` evaluates them as scikit-learn does, checked row by row against the pipeline
when the model is logged (:func:`check_same_answers`).

Why the served version has no MLflow signature (MLflow 3.17):

- a column signature naming the 22 features makes schema enforcement turn the reference pipeline's
  positional ``{"inputs": [[22 numbers]]}`` into columns ``0..21`` and refuse them as missing
  inputs (``mlflow/models/utils.py``, ``_enforce_schema``);
- a signature from type hints on ``predict`` (what MLflow's warning suggests) makes the scoring
  server refuse every request without an ``inputs`` key, i.e. ``dataframe_records`` and
  ``dataframe_split`` (``mlflow/pyfunc/scoring_server/__init__.py``, ``_parse_json_data``).

So the model checks the rows itself, by name when the columns are named (any order) and by
position otherwise, and the schema is written where people look for it instead: in the
registered version's description and in the model's metadata
(:mod:`stock_assets.mlflow_ops.serving.schema`). The sklearn-flavour model with the named
signature (skops) is still logged to every run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Relative to the logged model: what ``model_code.py`` reads as ``context.artifacts["model"]``.
ARTIFACT = "direction_model.npz"


class ExportError(ValueError):
    """A pipeline the portable model cannot represent, or one it would answer differently."""


def _trees(trees: list[Any], kind: str, scale: float = 1.0) -> dict[str, np.ndarray]:
    """scikit-learn trees (``tree_``) or histogram-GBDT predictors as one node table."""
    parts: dict[str, list[np.ndarray]] = {
        k: [] for k in ("feature", "threshold", "left", "right", "missing_left", "value")
    }
    roots, offset = [], 0
    for tree in trees:
        if kind == "hist_boosting":
            nodes = tree.nodes
            if nodes["is_categorical"].any():
                raise ExportError("categorical splits are not supported")
            leaf = nodes["is_leaf"].astype(bool)
            left = np.where(leaf, -1, nodes["left"].astype(np.int64) + offset)
            right = np.where(leaf, -1, nodes["right"].astype(np.int64) + offset)
            feature, threshold = nodes["feature_idx"], nodes["num_threshold"]
            missing, value = nodes["missing_go_to_left"], nodes["value"][:, None]
        else:
            t = tree.tree_
            leaf = t.children_left < 0
            left = np.where(leaf, -1, t.children_left.astype(np.int64) + offset)
            right = np.where(leaf, -1, t.children_right.astype(np.int64) + offset)
            feature, threshold, missing = t.feature, t.threshold, t.missing_go_to_left
            if kind == "forest":  # DecisionTreeClassifier.predict_proba's normalisation
                value = t.value[:, 0, :2].astype(np.float64)
                total = value.sum(axis=1)[:, None]
                total[total == 0.0] = 1.0
                value = value / total
            else:  # predict_stages adds learning_rate * value
                value = scale * t.value[:, 0, :1]
        for key, array in zip(
            parts, (feature, threshold, left, right, missing, value), strict=True
        ):
            parts[key].append(np.asarray(array))
        roots.append(offset)
        offset += len(leaf)
    table = {k: np.concatenate(v) for k, v in parts.items()}
    table["feature"] = np.where(table["left"] < 0, 0, table["feature"]).astype(np.int64)
    table["threshold"] = table["threshold"].astype(np.float64)
    table["missing_left"] = table["missing_left"].astype(bool)
    table["value"] = table["value"].astype(np.float64)
    return {**table, "roots": np.asarray(roots, dtype=np.int64)}


def portable_arrays(pipeline: Any, columns: list[str]) -> dict[str, np.ndarray]:
    """The arrays ``model_code.py`` evaluates, for a ``StandardScaler -> classifier`` pipeline."""
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression

    scaler, classifier = pipeline.named_steps["scaler"], pipeline.named_steps["classifier"]
    if list(classifier.classes_) != [0, 1]:
        raise ExportError(f"classes are {list(classifier.classes_)}; expected [0, 1]")
    arrays: dict[str, np.ndarray] = {
        "columns": np.asarray(columns, dtype=str),
        "mean": np.asarray(scaler.mean_, dtype=np.float64),
        "scale": np.asarray(scaler.scale_, dtype=np.float64),
    }
    if isinstance(classifier, LogisticRegression):
        kind = "logistic"
        arrays |= {"coef": classifier.coef_, "intercept": classifier.intercept_}
    elif isinstance(classifier, RandomForestClassifier):
        kind = "forest"
        arrays |= _trees(classifier.estimators_, kind)
    elif isinstance(classifier, GradientBoostingClassifier):
        kind = "boosting"
        baseline = classifier._raw_predict_init(np.zeros((1, len(columns))))[0, 0]
        arrays |= _trees(list(classifier.estimators_[:, 0]), kind, classifier.learning_rate)
        arrays["baseline"] = np.asarray(baseline, dtype=np.float64)
    elif isinstance(classifier, HistGradientBoostingClassifier):
        kind = "hist_boosting"
        if getattr(classifier, "_preprocessor", None) is not None:
            raise ExportError("categorical features are not supported")
        arrays |= _trees([p[0] for p in classifier._predictors], kind)
        arrays["baseline"] = np.asarray(classifier._baseline_prediction[0, 0])
    else:
        raise ExportError(f"classifier {type(classifier).__name__} is not supported")
    return {"kind": np.asarray(kind), **arrays}


def write_portable(pipeline: Any, columns: list[str], folder: Path) -> Path:
    """Write the pipeline's arrays to ``folder/direction_model.npz``; returns the file."""
    path = folder / ARTIFACT
    arrays = portable_arrays(pipeline, columns)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy's stub: a key could be allow_pickle
    return path


def probe_rows(pipeline: Any, example: pd.DataFrame, n: int = 256) -> pd.DataFrame:
    """``example`` plus ``n`` seeded rows spread over the features' scale (both sides of the
    splits), to compare the portable model with the pipeline on."""
    scaler = pipeline.named_steps["scaler"]
    rng = np.random.default_rng(0)
    spread = scaler.mean_ + rng.normal(scale=2.0, size=(n, len(example.columns))) * scaler.scale_
    return pd.concat([example, pd.DataFrame(spread, columns=example.columns)], ignore_index=True)


def check_same_answers(served: pd.DataFrame, pipeline: Any, rows: pd.DataFrame) -> None:
    """Refuse a portable model whose answers differ from the pipeline's (one line)."""
    direction = pipeline.predict(rows)
    probability = pipeline.predict_proba(rows)[:, 1]
    wrong = np.flatnonzero(
        (served["direction"].to_numpy() != direction)
        | ~np.isclose(served["probability_up"].to_numpy(), probability, rtol=1e-9, atol=1e-12)
    )
    if len(wrong):
        i = int(wrong[0])
        raise ExportError(
            f"serving_model: the portable model answers {len(wrong)} of {len(rows)} probe rows "
            f"differently from the fitted pipeline (row {i}: direction "
            f"{served['direction'].iloc[i]} vs {direction[i]}, probability_up "
            f"{served['probability_up'].iloc[i]} vs {probability[i]})"
        )
