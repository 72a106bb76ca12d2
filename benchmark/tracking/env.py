"""The process environment and log levels MLflow runs with: set once by each command line's entry
(`configure_mlflow_env`), never at import, so importing the benchmark changes nothing in a host process. A user's
own environment setting wins."""

from __future__ import annotations

import logging
import os


def configure_mlflow_env(*, verbose: bool = False, debug: bool = False) -> None:
    """Defaults for MLflow's environment variables, and MLflow's and urllib3's log levels; call at the top of a
    command line's `main` (`verbose` keeps MLflow's chatter, `debug` its error records and urllib3's retries)."""
    os.environ.setdefault("MLFLOW_TELEMETRY_DISABLED", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "1")  # the name MLflow 3.17 reads (the line above: older docs)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's own INFO lines (store creation) are not ours
    # MLflow retries a failing HTTP request 7 times with exponential backoff (over 4 minutes); once the server
    # answered at start-up, a few retries are enough to ride out a restart.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.DEBUG if verbose else logging.WARNING)  # no store-creation chatter
    # MLflow's SQL store logs every database error with its traceback before raising it, and urllib3 logs a
    # "Retrying (Retry(total=...))" WARNING per retry of an unreachable server: the raised error is what the
    # command reports (one line), so these records are for --verbose/--debug only
    quiet = not (verbose or debug)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL if quiet else logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.ERROR if quiet else logging.DEBUG)
