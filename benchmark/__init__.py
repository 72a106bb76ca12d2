"""The experiment: config, protocols, nested tuning (Optuna), folds, runner, `tracking` (the only MLflow code),
stats and `report`. Imports `neipalette`, never the reverse."""
