"""The MLflow adapter: the only package that imports mlflow. `write` (the Tracker) with `lineage`, `models`,
`claims`, `local`, `names`, `figures`; `read`, `summary`, `sweep`, `coverage`; `store` and `lease`; `env`."""
