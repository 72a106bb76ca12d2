"""The tags `mlflow.start_run` sets from the process's context (user, source name and type, git commit), for
the runs this package makes with `MlflowClient.create_run` (UI columns: Created by, Source, Version)."""

from __future__ import annotations

from functools import cache

from mlflow.tracking.context.registry import resolve_tags


@cache
def context_tags() -> dict[str, str]:
    """MLflow's run-context tags of this process, resolved once (the entry point does not change)."""
    return {k: str(v) for k, v in resolve_tags().items() if v is not None}


def with_context(tags: dict[str, str]) -> dict[str, str]:
    """`tags` over the context tags: what the caller sets wins."""
    return {**context_tags(), **tags}
