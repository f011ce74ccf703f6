"""The asset graph: stock_data → features → model → deploy_decision → deployed_model."""

from stock_assets.assets.data import stock_data
from stock_assets.assets.deployment import deploy_decision, deployed_model
from stock_assets.assets.features import features
from stock_assets.assets.model import model

GROUP = "stock_prediction"
ALL_ASSETS = [stock_data, features, model, deploy_decision, deployed_model]

__all__ = [
    "ALL_ASSETS",
    "GROUP",
    "deploy_decision",
    "deployed_model",
    "features",
    "model",
    "stock_data",
]
