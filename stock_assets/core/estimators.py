"""Which classifiers can be trained, their hyperparameters, and the unfitted pipeline.

No Dagster, KFP or MLflow here (scikit-learn only, imported where it is used, so that checking a
configuration stays cheap). Reference hyperparameters come from the reference pipeline's
``train_model`` component and its MLflow ``compare_models`` grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stock_assets.core.errors import TrainingError

if TYPE_CHECKING:  # scikit-learn is imported where it is used, to keep imports light
    from sklearn.pipeline import Pipeline

__all__ = [
    "DEFAULT_HYPERPARAMETERS",
    "DEFAULT_RANDOM_STATE",
    "MIN_EARLY_STOPPING_ROWS",
    "MODEL_TYPES",
    "OPTIONAL_HYPERPARAMETERS",
    "accepted_hyperparameters",
    "build_pipeline",
    "check_hyperparameter",
    "check_model_type",
    "resolve_hyperparameters",
]

MODEL_TYPES: tuple[str, ...] = (
    "random_forest",
    "gradient_boosting",
    "logistic",
    "hist_gradient_boosting",
)

#: Each type's hyperparameters and their defaults: the reference pipeline's for its three types,
#: scikit-learn's for ``hist_gradient_boosting`` (with ``max_iter`` an upper bound: it stops
#: early once 10 rounds bring no gain on a held-out 10 % of its training rows).
DEFAULT_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 100, "max_depth": 10},
    "gradient_boosting": {"n_estimators": 100, "max_depth": 5, "learning_rate": 0.1},
    "logistic": {"C": 1.0, "max_iter": 1000},
    "hist_gradient_boosting": {
        "max_iter": 200,
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "l2_regularization": 0.0,
    },
}

#: Hyperparameters a type also accepts, unset by default (scikit-learn's default applies).
#: ``max_samples`` as a whole number bounds the rows each tree of a random forest draws, so its
#: cost stops growing with the data; it is capped at the rows available when there are fewer.
OPTIONAL_HYPERPARAMETERS: dict[str, tuple[str, ...]] = {
    "random_forest": ("max_samples", "min_samples_leaf"),
    "gradient_boosting": (),
    "logistic": (),
    "hist_gradient_boosting": ("max_depth", "min_samples_leaf"),
}


def accepted_hyperparameters(model_type: str) -> tuple[str, ...]:
    """Every hyperparameter ``model_type`` takes: its defaults' keys, then the optional ones."""
    return (*DEFAULT_HYPERPARAMETERS[model_type], *OPTIONAL_HYPERPARAMETERS[model_type])


DEFAULT_RANDOM_STATE = 42
#: Fewest fit rows for histogram boosting's early stopping (5 held-out rows at 10 %).
MIN_EARLY_STOPPING_ROWS = 50


def check_model_type(model_type: str, *, auto: bool = False) -> str:
    """``model_type`` if it is one of :data:`MODEL_TYPES` (or ``"auto"`` when ``auto``).

    An unknown type is an error, never a silent fallback.
    """
    if model_type in MODEL_TYPES or (auto and model_type == "auto"):
        return model_type
    choices = ("'auto' or one of " if auto else "one of ") + ", ".join(MODEL_TYPES)
    raise TrainingError(f"model_type={model_type!r} is not supported; choose {choices}")


def check_hyperparameter(name: str, value: float | None) -> float | None:
    """``value`` if it is unset (None: the model type's default) or a positive number."""
    if value is not None and not value > 0:
        raise TrainingError(
            f"{name}={value} must be positive; leave it unset to keep the model type's default"
        )
    return value


def resolve_hyperparameters(
    model_type: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the defaults for ``model_type`` updated with the non-None ``overrides``.

    Raises TrainingError for an unknown model type or a key that model type does not take.
    """
    check_model_type(model_type)
    accepted = accepted_hyperparameters(model_type)
    resolved = dict(DEFAULT_HYPERPARAMETERS[model_type])
    for key, value in (overrides or {}).items():
        if key not in accepted:
            hint = (
                " (random_state is a separate argument, not a hyperparameter)"
                if key == "random_state"
                else ""
            )
            raise TrainingError(
                f"hyperparameter {key!r} is not valid for model_type {model_type!r}{hint}; "
                f"valid keys: {', '.join(accepted)}"
            )
        if value is not None:
            resolved[key] = value
    return resolved


def build_pipeline(
    model_type: str,
    hyperparameters: Mapping[str, Any] | None = None,
    random_state: int = DEFAULT_RANDOM_STATE,
    n_rows: int | None = None,
) -> Pipeline:
    """Unfitted ``StandardScaler -> classifier`` pipeline (missing hyperparameters = defaults).

    ``n_rows``, the rows it will be fitted on, caps a whole-number ``max_samples`` and, below
    ``MIN_EARLY_STOPPING_ROWS``, turns off histogram boosting's early stopping (too few rows).
    """
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    params = resolve_hyperparameters(model_type, hyperparameters)
    max_samples = params.get("max_samples")
    if isinstance(max_samples, int) and n_rows is not None:
        params["max_samples"] = min(max_samples, n_rows)
    classifier: Any
    if model_type == "random_forest":
        classifier = RandomForestClassifier(**params, random_state=random_state)
    elif model_type == "gradient_boosting":
        classifier = GradientBoostingClassifier(**params, random_state=random_state)
    elif model_type == "hist_gradient_boosting":
        early = n_rows is None or n_rows >= MIN_EARLY_STOPPING_ROWS
        classifier = HistGradientBoostingClassifier(
            **params, early_stopping=early, random_state=random_state
        )
    else:
        classifier = LogisticRegression(**params, random_state=random_state)
    return Pipeline([("scaler", StandardScaler()), ("classifier", classifier)])
