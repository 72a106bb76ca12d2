"""The process environment MLflow reads: set once by each command line's entry (`configure_mlflow_env`),
never at import, so importing the benchmark changes nothing in a host process. A user's own setting wins."""

from __future__ import annotations

import os


def configure_mlflow_env() -> None:
    """Defaults for MLflow's environment variables; call at the top of a command line's `main`."""
    os.environ.setdefault("MLFLOW_TELEMETRY_DISABLED", "1")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's own INFO lines (store creation) are not ours
    # MLflow retries a failing HTTP request 7 times with exponential backoff (over 4 minutes); once the server
    # answered at start-up, a few retries are enough to ride out a restart.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
