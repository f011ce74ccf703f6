"""The pure core: data, features, training, selection and plots. No Dagster, no KFP."""
