"""The asset graph: stock_data → features → model → deploy_decision → deployed_model."""
