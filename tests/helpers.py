"""Helpers the benchmark tests share: reading back what a run wrote to an MLflow store."""

from __future__ import annotations


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def all_runs(uri: str, experiment: str | None = "neipalette") -> list:
    """Every run of `experiment` in the store at `uri` (of every experiment with None)."""
    client = mlflow_client(uri)
    if experiment is None:
        ids = [e.experiment_id for e in client.search_experiments()]
    else:
        exp = client.get_experiment_by_name(experiment)
        ids = [exp.experiment_id] if exp else []
    return client.search_runs(ids, max_results=5000) if ids else []
