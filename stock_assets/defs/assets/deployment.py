"""The deploy gate (threshold, then champion/challenger) and the promotion it guards.

Both steps rest on the record, not on the files under the data directory (a cache anyone
can edit). ``deploy_decision`` judges the metrics MLflow logged for the model's registered
version and refuses a stored ``model`` value that disagrees with them
(:func:`stock_assets.core.decision.as_recorded`); ``deployed_model`` promotes only a version
that the MLflow run which made the decision tagged ``deploy_decision=approved``.
"""

import dataclasses
from collections.abc import Iterator
from typing import Any

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetObservation,
    DagsterEventType,
    Failure,
    Output,
    asset,
)
from mlflow.exceptions import MlflowException

from stock_assets.core.backtest import next_returns
from stock_assets.core.decision import (
    JUDGED_METRICS,
    ModelRecord,
    RecordMismatch,
    as_recorded,
    check_test_rows,
    decide,
)
from stock_assets.core.splits import labelled_rows_in
from stock_assets.core.values import Decision, Promotion, TrainedModel
from stock_assets.defs.config import DeployDecisionConfig
from stock_assets.defs.constants import GROUP_NAME
from stock_assets.defs.metadata import decision_metadata, none_as_dash
from stock_assets.defs.resources import MlflowTracking
from stock_assets.defs.run_record import DAGSTER_RUN_TAG
from stock_assets.mlflow_ops import registry, run_logging
from stock_assets.mlflow_ops.backtest_logging import production_signal
from stock_assets.mlflow_ops.registry import REGISTERED_MODEL_NAME

#: MLflow errors that mean "no such version / run", not "the store is down".
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


@asset(
    group_name=GROUP_NAME,
    kinds={"mlflow"},
    description=(
        "Deploy yes/no: the model's gate metric on its test window (accuracy by default, or "
        "the backtest's sharpe, excess_return or deflated_sharpe) against its threshold, "
        "then against the production model's same metric on the same window."
    ),
    code_version="1",
    op_tags={"kfp/cache": "false"},  # it reads production, which moves: never cached on KFP
)
def deploy_decision(
    context: AssetExecutionContext,
    config: DeployDecisionConfig,
    model: TrainedModel,
    features: pd.DataFrame,
    mlflow: MlflowTracking,
) -> Output[Decision]:
    """Judge the model on the figures MLflow logged for it, never on a stored or edited one."""
    where = f"stored model value {_loaded_input(context, 'model').get('path') or '(artifact)'}"
    rows_from = f"stored features value {_loaded_input(context, 'features').get('path') or ''}"
    gate = config.gate_metric
    client, run_id = mlflow.client, mlflow.run_id
    try:
        record = model_record(mlflow, model, where)
        model = as_recorded(model, record, where, tuple(dict.fromkeys([*JUDGED_METRICS, gate])))
        test_rows = labelled_rows_in(features, model.test_window)
        check_test_rows(test_rows, record, rows_from.rstrip())
    except RecordMismatch as error:
        refused = {"deploy_decision": "refused", "deploy_reason": str(error)[:5000]}
        with mlflow.reporting_errors():
            run_logging.set_tags(client, run_id, refused)
        raise Failure(description=str(error), allow_retries=False) from None
    with mlflow.reporting_errors():
        champion = registry.score_production(
            client, test_rows, model.feature_columns, model.registered_version
        )
    if gate != "accuracy" and config.challenge_production and champion.version is not None:
        settings = (model.cost_bps, model.long_short, model.n_trials)  # production judged alike
        returns = next_returns(features).loc[test_rows.index].to_numpy()
        with mlflow.reporting_errors():
            value, note = production_signal(
                client,
                test_rows,
                returns,
                model.feature_columns,
                model.registered_version,
                gate,
                settings,
            )
        champion = dataclasses.replace(champion, gate_value=value, note=note or champion.note)
    try:
        decision = decide(
            model,
            config.accuracy_threshold,
            champion,
            config.challenge_production,
            gate,
            config.threshold(),
        )
    except RecordMismatch as error:
        raise Failure(description=str(error), allow_retries=False) from None
    verdict = "approved" if decision.deploy else "rejected"
    with mlflow.reporting_errors():
        if decision.passes_threshold:
            registry.mark_staging(client, model.registered_version)
        run_logging.log_params(
            client,
            run_id,
            {
                "accuracy_threshold": config.accuracy_threshold,
                "challenge_production": config.challenge_production,
                "gate_metric": gate,
                "gate_threshold": decision.gate_threshold,
            },
        )
        if champion.accuracy is not None:
            run_logging.log_metric(client, run_id, "champion_accuracy", champion.accuracy)
        if gate != "accuracy" and champion.gate_value is not None:
            run_logging.log_metric(client, run_id, f"champion_{gate}", champion.gate_value)
        run_logging.set_tags(
            client,
            run_id,
            {
                "deploy_decision": verdict,
                "deploy_reason": decision.reason,
                "decided_version": decision.registered_version,  # the version this run judged
            },
        )
    context.log.info(("Deploy: " if decision.deploy else "Do not deploy: ") + decision.reason)
    return Output(decision, metadata=decision_metadata(decision))


@asset(
    group_name=GROUP_NAME,
    kinds={"mlflow"},
    output_required=False,
    # For the KFP exporter (op tags, off the asset's page): dsl.If(deploy_decision.deploy), and
    # never cached (it promotes).
    op_tags={"kfp/run_if": "deploy_decision.deploy", "kfp/cache": "false"},
    code_version="1",
    description=(
        f"The approved model: alias 'production' of '{REGISTERED_MODEL_NAME}' moves to its "
        "version. Not materialised when the decision rejects the model."
    ),
)
def deployed_model(
    context: AssetExecutionContext, deploy_decision: Decision, mlflow: MlflowTracking
) -> Iterator[Output[Promotion]]:
    """Promote in the registry, only when approved; otherwise production stays as it was."""
    if not deploy_decision.deploy:
        context.log.info(f"Skipped: {deploy_decision.reason}; production is unchanged.")
        context.log_event(skip_observation(context, deploy_decision))
        return
    require_approval(context, mlflow, deploy_decision)
    client = mlflow.client
    with mlflow.reporting_errors():
        promoted = registry.promote(client, deploy_decision.registered_version)
        # Read back: a promotion by hand (stock-registry) or by another run may have raced this
        # one, and the run reports where production really is, not where it meant to put it.
        actual = registry.production_version(client)
        client.set_tag(mlflow.run_id, "production_version", str(actual))
    if actual != promoted.version:
        context.log.warning(
            f"version {promoted.version} was promoted, but production now points at version "
            f"{actual}: another promotion happened at the same time"
        )
    yield Output(
        promoted,
        metadata={
            "registered_model": promoted.name,
            "version": promoted.version,
            "production_version_after": str(actual),
            "previous_production_version": str(promoted.previous_production_version),
            "model_uri": promoted.model_uri,
        },
    )


def skip_observation(context: AssetExecutionContext, decision: Decision) -> AssetObservation:
    """Why ``deployed_model`` was not materialised, on its page (Events, and its latest
    observation): a skipped asset has no materialisation to carry the reason."""
    reason = f"skipped: {decision.reason}; production is unchanged"
    return AssetObservation(
        asset_key=context.asset_key,
        description=reason,
        metadata={
            "skipped": reason,
            "decided_version": decision.registered_version,
            "production_version": none_as_dash(decision.champion_version),
        },
    )


def model_record(mlflow: MlflowTracking, model: TrainedModel, where: str) -> ModelRecord:
    """What MLflow recorded for ``model.registered_version``: run, metrics, params, features."""
    client = mlflow.client
    version = model.registered_version
    with mlflow.reporting_errors():
        try:
            if not version.isdigit():
                raise RecordMismatch(f"{where}: field 'registered_version' is {version!r}")
            registered = client.get_model_version(REGISTERED_MODEL_NAME, version)
            run = client.get_run(registered.run_id) if registered.run_id else None
        except MlflowException as error:
            if error.error_code not in MISSING:
                raise
            run = None
        if run is None:
            raise RecordMismatch(
                f"{where}: field 'registered_version' is {version!r}, which the registry of "
                f"{mlflow.tracking_uri} does not have with its run; nothing is deployed from it"
            )
        columns = None
        if model.mlflow_run_id == run.info.run_id:  # else as_recorded names mlflow_run_id
            if registered.source != model.serving_model_uri:
                raise RecordMismatch(
                    f"{where}: field 'serving_model_uri' is {model.serving_model_uri!r} but "
                    f"version {version} serves {registered.source!r}"
                )
            columns = _logged_inputs(mlflow, model, where)
        return ModelRecord(
            version,
            run.info.run_id,
            run.data.metrics,
            run.data.params,
            feature_columns=columns,
            test_digest=run.data.tags.get("test_digest"),
        )


def _logged_inputs(mlflow: MlflowTracking, model: TrainedModel, where: str) -> list[str] | None:
    """The input columns of the sklearn model the run logged (its signature), if it has one."""
    from mlflow.models import get_model_info

    uri = model.model_uri
    try:
        if uri.startswith("models:/m-"):
            logged = mlflow.client.get_logged_model(uri.removeprefix("models:/"))
            if logged.source_run_id != model.mlflow_run_id:
                raise RecordMismatch(
                    f"{where}: field 'model_uri' is {uri!r}, a model of run "
                    f"{logged.source_run_id}, not of run {model.mlflow_run_id}"
                )
        signature = get_model_info(uri).signature
    except MlflowException as error:
        if error.error_code not in MISSING:
            raise
        message = str(error.message).splitlines()[0][:200]
        raise RecordMismatch(f"{where}: field 'model_uri' is {uri!r}: {message}") from None
    return signature.inputs.input_names() if signature is not None else None


def require_approval(
    context: AssetExecutionContext, mlflow: MlflowTracking, decision: Decision
) -> None:
    """Fail unless the MLflow run that made ``decision`` approved its version (the record)."""
    loaded = _loaded_input(context, "deploy_decision")
    where = f"stored deploy_decision value {loaded.get('path') or '(artifact)'}"
    producer = loaded.get("run_id")
    with mlflow.reporting_errors():
        if producer and producer != context.run.run_id:  # a decision of an earlier run
            found = mlflow.client.search_runs(
                [mlflow.experiment_id()], f"tags.{DAGSTER_RUN_TAG} = '{producer}'", max_results=1
            )
            tags, run_id = (found[0].data.tags, found[0].info.run_id) if found else ({}, None)
        else:
            tags, run_id = mlflow.client.get_run(mlflow.run_id).data.tags, mlflow.run_id
    decided, verdict = tags.get("decided_version"), tags.get("deploy_decision")
    problem = None
    if decided != decision.registered_version:
        problem = (
            f"field 'registered_version' is {decision.registered_version!r} but MLflow run "
            f"{run_id} decided on version {decided!r}"
        )
    elif verdict != "approved":
        problem = f"field 'deploy' is true but MLflow run {run_id} recorded {verdict!r}"
    if problem:
        raise Failure(
            description=f"{where}: {problem}; production is unchanged",
            allow_retries=False,
        )


def _loaded_input(context: AssetExecutionContext, input_name: str) -> dict[str, Any]:
    """The metadata the IO manager reported when this step loaded ``input_name`` (path, run)."""
    step_key = context.get_step_execution_context().step.key
    found: dict[str, Any] = {}
    for entry in context.instance.all_logs(
        context.run.run_id, of_type=DagsterEventType.LOADED_INPUT
    ):
        event = entry.dagster_event
        if event is None or event.step_key != step_key:
            continue
        if event.event_specific_data.input_name == input_name:
            metadata = event.event_specific_data.metadata or {}
            found = {key: getattr(value, "value", value) for key, value in metadata.items()}
    return found
