"""The Dagster entry point: ``defs`` is what ``dagster dev`` and the KFP exporter load."""

from dagster import Definitions

from stock_assets.assets import ALL_ASSETS
from stock_assets.checks import ALL_CHECKS
from stock_assets.io_manager import AssetFileIOManager
from stock_assets.resources import mlflow_tracking
from stock_assets.schedules import nightly_retrain, retrain_job
from stock_assets.sensors import ALL_SENSORS

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_CHECKS,
    jobs=[retrain_job],
    schedules=[nightly_retrain],
    sensors=ALL_SENSORS,
    resources={"io_manager": AssetFileIOManager(), "mlflow": mlflow_tracking},
)
