"""The MLflow model registry, the modern way: aliases and tags instead of deprecated stages.

How the reference pipeline's stages map:

=============  =====================================================================
stage          here
=============  =====================================================================
None           every trained model is a new version, tagged ``stage=none``
Staging        alias ``staging`` (+ tag ``stage=staging``): passed checks and threshold
Production     alias ``production`` (+ tag ``stage=production``): approved and promoted
Archived       tag ``stage=archived`` on the version that lost ``production``
=============  =====================================================================

The registered model's tag ``production_history`` lists the versions that held production, so
``rollback`` knows where to go. Each version's tag ``stage_history`` records when it entered
each stage (``none@2025-01-31T18:00:00Z, staging@...``): the registry itself keeps no dates of
alias moves. ``stock-registry show N`` prints a version's run, data, metrics and that history.
Run ``stock-registry --help`` for the CLI (:mod:`stock_assets.mlflow_ops.registry_cli`).

Only the store's answer "does not exist" (:func:`is_missing`) is read as absence; any other
store error propagates, so a server that is down is never reported as an empty registry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from stock_assets.core.features import TARGET_COLUMN
from stock_assets.core.values import Champion, Promotion
from stock_assets.mlflow_ops.serving.schema import schema_description

REGISTERED_MODEL_NAME = "stock-prediction"
PRODUCTION_ALIAS = "production"
STAGING_ALIAS = "staging"
STAGE_TAG = "stage"
HISTORY_TAG = "production_history"
STAGE_HISTORY_TAG = "stage_history"
#: The tables whose lineage (digest, rows, dates) ``show`` prints, from version then run tags.
LINEAGE_TABLES = ("stock_data", "features", "train", "test")
_NOT_FOUND = ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)


class RegistryError(ValueError):
    """A registry action that cannot be done, with what to do instead."""


def normalise_version(version: str | int) -> str:
    """A version number as the registry spells it: ``'01'``, ``' 1'`` and ``1`` are ``'1'``."""
    text = str(version).strip()
    if not text.isdigit() or int(text) < 1:
        raise RegistryError(
            f"version {str(version)!r} is not a version number; expected a whole number such as 3"
        )
    return str(int(text))


def production_version(client: MlflowClient, name: str = REGISTERED_MODEL_NAME) -> str | None:
    """The version the ``production`` alias points at, or None."""
    return _alias_version(client, name, PRODUCTION_ALIAS)


def register_version(
    client: MlflowClient,
    model_uri: str,
    run_id: str,
    tags: dict[str, Any],
    name: str = REGISTERED_MODEL_NAME,
    description: str | None = None,
) -> str:
    """Register a trained model as a new version (stage None).

    The version's description (default: the served model's inputs and outputs, see
    :func:`~stock_assets.mlflow_ops.serving.schema.schema_description`) stands in for the
    signature the served model cannot have. The logged model is linked to the version, so the
    run's logged-models table names it.
    """
    if description is None:
        description = schema_description()
    try:
        client.get_registered_model(name)
    except MlflowException as error:
        if not is_missing(error):
            raise
        client.create_registered_model(
            name, description="Next-day direction classifier from the stock_assets graph."
        )
    # MLflow 3 logged models live at models:/m-<id>; a tracking server wants that id too.
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    version = client.create_model_version(
        name,
        model_uri,
        run_id=run_id,
        model_id=model_id,
        tags={
            STAGE_TAG: "none",
            STAGE_HISTORY_TAG: _history_entry("none"),
            **{k: str(v) for k, v in tags.items()},
        },
        description=description,
    )
    if model_id is not None:
        link_logged_model(client, model_id, name, int(version.version))
    return str(version.version)


def link_logged_model(client: MlflowClient, model_id: str, name: str, version: int) -> None:
    """Record ``name`` version ``version`` on the logged model, as ``mlflow.register_model``
    does: the tag the UI's logged-models table reads ("Registered models"). A tracking server
    sets it itself when the version is created (with the version as a number, as here); a
    direct SQLite store does not."""
    entry = {"name": name, "version": version}
    current = client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS)
    linked = json.loads(current) if current else []
    if entry not in linked:
        linked.append(entry)
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(linked)})


def mark_staging(client: MlflowClient, version: str, name: str = REGISTERED_MODEL_NAME) -> None:
    """Point ``staging`` at a version that passed the checks and the threshold."""
    version = normalise_version(version)
    _require_version(client, name, version)
    client.set_registered_model_alias(name, STAGING_ALIAS, version)
    if _stage(client, name, version) == "none":
        _set_stage(client, name, version, "staging")


def promote(client: MlflowClient, version: str, name: str = REGISTERED_MODEL_NAME) -> Promotion:
    """Move ``production`` to ``version``; the version that loses it is tagged archived.

    Promoting the version already in production changes nothing (its stage tag is repaired
    if it says otherwise). The alias is read back after writing: when another promotion
    raced this one, :func:`production_version` afterwards is the truth to report.
    """
    version = normalise_version(version)
    _require_version(client, name, version)
    previous = production_version(client, name)
    if previous != version:
        client.set_registered_model_alias(name, PRODUCTION_ALIAS, version)
        _set_stage(client, name, version, "production")
        if previous is not None:
            _set_stage(client, name, previous, "archived")
        history = [v for v in _history(client, name) if v != version] + [version]
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    elif _stage(client, name, version) != "production":
        _set_stage(client, name, version, "production")
    return Promotion(
        name=name,
        version=version,
        alias=PRODUCTION_ALIAS,
        previous_production_version=previous,
        changed=previous != version,
        model_uri=f"models:/{name}@{PRODUCTION_ALIAS}",
    )


def score_production(
    client: MlflowClient,
    test_rows: pd.DataFrame,
    feature_columns: Sequence[str],
    challenger_version: str,
    name: str = REGISTERED_MODEL_NAME,
) -> Champion:
    """The production version's accuracy on the challenger's test rows, or why there is none."""
    version = production_version(client, name)
    if version is None:
        return Champion(note="no production model yet: nothing to beat")
    if version == challenger_version:
        return Champion(version, note=f"version {version} is already production")
    import mlflow.pyfunc

    try:
        champion = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        predictions = champion.predict(test_rows[list(feature_columns)])["direction"]
    except Exception as error:  # an incompatible old model must not block a good new one
        return Champion(version, note=f"production version {version} could not be scored ({error})")
    truth = test_rows[TARGET_COLUMN].astype(int).to_numpy()
    return Champion(version, float((predictions.to_numpy() == truth).mean()))


def rollback(client: MlflowClient, name: str = REGISTERED_MODEL_NAME) -> dict[str, Any]:
    """Point ``production`` back at the version that held it before the current one."""
    current = production_version(client, name)
    history = _history(client, name)
    if current is None:
        raise RegistryError(f"{name} has no production version; nothing to roll back")
    earlier = history[: history.index(current)] if current in history else history
    if not earlier:
        raise RegistryError(
            f"version {current} of {name} is the first production version; "
            "there is no earlier one to roll back to"
        )
    target = earlier[-1]
    client.set_registered_model_alias(name, PRODUCTION_ALIAS, target)
    _set_stage(client, name, target, "production")
    _set_stage(client, name, current, "archived")
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join([*earlier, current][:-1]))
    return {"name": name, "version": target, "rolled_back_from": current}


def list_versions(client: MlflowClient, name: str = REGISTERED_MODEL_NAME) -> list[dict[str, Any]]:
    """Every version, newest first, with its aliases, stage tag and test metrics."""
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as error:
        if not is_missing(error):
            raise
        raise RegistryError(
            f"no registered model {name!r} in this tracking store; run the pipeline first"
        ) from error
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    rows = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        rows.append(
            {
                "version": str(mv.version),
                "aliases": ",".join(sorted(by_version.get(str(mv.version), []))),
                "stage": mv.tags.get(STAGE_TAG, ""),
                "model_type": mv.tags.get("model_type", ""),
                "accuracy": mv.tags.get("accuracy", ""),
                "run_id": mv.run_id or "",
                "created": mv.creation_timestamp,
            }
        )
    return sorted(rows, key=lambda r: int(r["version"]), reverse=True)


def describe_version(
    client: MlflowClient, version: str, name: str = REGISTERED_MODEL_NAME
) -> dict[str, Any]:
    """One version's run, data lineage, metrics, stage, aliases and stage history."""
    from stock_assets.mlflow_ops.lineage import datasets_used

    version = normalise_version(version)
    _require_version(client, name, version)
    mv = client.get_model_version(name, str(version))
    aliases = sorted(
        alias
        for alias, aliased in client.get_registered_model(name).aliases.items()
        if str(aliased) == str(mv.version)
    )
    run = None
    if mv.run_id:
        try:
            run = client.get_run(mv.run_id)
        except MlflowException as error:  # a deleted run: the version's own tags remain
            if not is_missing(error):
                raise
            run = None
    run_tags = run.data.tags if run else {}
    data = {}
    for table in LINEAGE_TABLES:
        fields = {
            field: mv.tags.get(f"{table}_{field}") or run_tags.get(f"{table}_{field}", "")
            for field in ("digest", "rows", "window")
        }
        if fields["digest"]:
            data[table] = fields
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": mv.run_id or "",
        "run_status": run.info.status if run else "",
        "created": _timestamp(mv.creation_timestamp),
        "stage": mv.tags.get(STAGE_TAG, ""),
        "aliases": aliases,
        "model_type": mv.tags.get("model_type", ""),
        "data": data,
        "datasets": datasets_used(run) if run else [],
        "metrics": dict(sorted(run.data.metrics.items())) if run else {},
        "stage_history": stage_history(mv.tags.get(STAGE_HISTORY_TAG, "")),
    }


def stage_history(value: str) -> list[tuple[str, str]]:
    """``stage@time, ...`` as (stage, time) pairs, oldest first."""
    pairs = []
    for entry in value.split(","):
        stage, _, when = entry.strip().partition("@")
        if stage:
            pairs.append((stage, when))
    return pairs


def _set_stage(client: MlflowClient, name: str, version: str, stage: str) -> None:
    """Set the stage tag and append ``stage@now`` to the version's stage history."""
    current = client.get_model_version(name, version).tags.get(STAGE_HISTORY_TAG, "")
    history = ", ".join(part for part in (current, _history_entry(stage)) if part)
    client.set_model_version_tag(name, version, STAGE_TAG, stage)
    client.set_model_version_tag(name, version, STAGE_HISTORY_TAG, history)


def _history_entry(stage: str) -> str:
    return f"{stage}@{dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


def _timestamp(millis: int | None) -> str:
    if not millis:
        return ""
    return f"{dt.datetime.fromtimestamp(millis / 1000, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


def is_missing(error: MlflowException) -> bool:
    """Whether the store answered that the thing asked for does not exist.

    Only that answer means "not there": a server that is down, times out, refuses the request
    or answers something that is not MLflow's is a store error, for the caller to report.
    """
    return error.error_code == _NOT_FOUND


def _alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    # The registered model's alias map, not get_model_version_by_alias: a missing alias is then
    # a missing key, never an error to tell apart from a store that could not be read.
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException as error:
        if not is_missing(error):
            raise
        return None
    version = aliases.get(alias)
    return None if version is None else str(version)


def _require_version(client: MlflowClient, name: str, version: str) -> None:
    try:
        client.get_model_version(name, str(version))
    except MlflowException as error:
        if not is_missing(error):
            raise
        existing = sorted(
            (int(mv.version) for mv in client.search_model_versions(f"name = '{name}'")),
        )
        raise RegistryError(
            f"version {version!r} of {name} does not exist; existing versions: "
            f"{', '.join(map(str, existing)) or 'none'}"
        ) from None


def _stage(client: MlflowClient, name: str, version: str) -> str:
    return client.get_model_version(name, version).tags.get(STAGE_TAG, "")


def _history(client: MlflowClient, name: str) -> list[str]:
    try:
        tags = client.get_registered_model(name).tags
    except MlflowException as error:
        if not is_missing(error):
            raise
        return []
    history: list[str] = []
    for entry in tags.get(HISTORY_TAG, "").split(","):
        if entry.strip().isdigit() and normalise_version(entry) not in history:
            history.append(normalise_version(entry))
    return history


if __name__ == "__main__":  # the command lives in registry_cli, which imports this module
    raise SystemExit(
        "error: the registry's command is stock-registry "
        "(python -m stock_assets.mlflow_ops.registry_cli)"
    )
