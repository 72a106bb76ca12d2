"""The run `mlflow run . -e report` makes (MLFLOW_RUN_ID): which benchmark it reports, and its name and tags.

`mlflow run` creates a run before the command starts. Left alone it would be an anonymous top-level run per
report; here it becomes `report of <benchmark>` (tag `neipalette.role=report`) nested under the parent run it
reports, whose `report/` artifacts hold the files. (A project run that is itself a benchmark parent, from
`mlflow run --run-id`, an option MLflow documents as internal, is left as it is.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mlflow.tracking import MlflowClient

from benchmark.tracking.local import tracking_uri
from benchmark.tracking.names import TAG, report_run_name


@dataclass(frozen=True)
class ProjectRun:
    run_id: str
    experiment_name: str
    is_benchmark: bool  # a benchmark parent run reused by `mlflow run --run-id`


def project_run(uri: str | None = None) -> ProjectRun | None:
    """The run `mlflow run` made or reused for this process, or None outside `mlflow run`."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return None
    client = MlflowClient(tracking_uri=uri or tracking_uri())
    run = client.get_run(run_id)
    return ProjectRun(run_id, client.get_experiment(run.info.experiment_id).name,
                      run.data.tags.get(f"{TAG}role") == "parent")


def name_report_run(project: ProjectRun, parent_run_id: str, parent_run_name: str, uri: str | None = None) -> None:
    """The project run as the report's run: named after the benchmark, tagged, nested under its parent run (when
    both are in one experiment; else it points at it by tag only). Nothing when the project run is the parent."""
    if project.is_benchmark:
        return
    client = MlflowClient(tracking_uri=uri or tracking_uri())
    experiments = {client.get_run(r).info.experiment_id for r in (parent_run_id, project.run_id)}
    tags = {"mlflow.runName": report_run_name(parent_run_name), f"{TAG}role": "report",
            f"{TAG}benchmark_run_id": parent_run_id}
    if len(experiments) == 1:
        tags["mlflow.parentRunId"] = parent_run_id
    for key, value in tags.items():
        client.set_tag(project.run_id, key, value)
