"""The benchmark report: tables like the original study's Tables 2 and 3, with intervals that tell.

`python -m benchmark.report [--run-id ID] [--experiment NAME] [--out DIR] [--format md|json|html]` reads one
benchmark from MLflow (layout: docs/mlflow-layout.md), writes `report.md`, `report.html` (figures embedded,
opens offline), `report.json` and the figure PNGs to DIR, and logs them on the parent run under `report/`.
Statistics: `benchmark.stats` (corrected t on the logit scale for CV means, corrected paired t with Holm over the
declared family, an outfit-level bootstrap for the single split); see README "Statistics in the report".
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from benchmark import stats
from benchmark.report.constants import CONFIDENCE, N_BOOT
from benchmark.report.model import Report, _metric_order, build_report
from benchmark.report.render import render_html, render_json, render_markdown
from benchmark.tracking.read import BenchmarkRecord, load_benchmark
from benchmark.tracking.env import configure_mlflow_env
from benchmark.tracking.store import TrackingError, describe_tracking_failure
from neipalette.errors import error_boundary

logger = logging.getLogger(__name__)


# -- side effects: summary runs, files ------------------------------------------------------------------
def write_missing_summaries(record: BenchmarkRecord, report: Report) -> list[dict]:
    """Write a summary run for every (arch, protocol) whose planned fold jobs all finished and that has none."""
    have = set()
    if not record.summaries.empty:
        done = record.summaries[record.summaries["status"] == "FINISHED"]
        have = set(zip(done["arch"], done["protocol"]))
    metrics = _metric_order(record.metric_names)
    written = []
    for (arch, protocol), (g, preds, n_planned) in report.frames.items():
        if (arch, protocol) in have or g.empty or len(g) < n_planned:
            continue
        values = stats.summarize_folds(g, protocol, metrics, preds, confidence=CONFIDENCE, n_boot=N_BOOT,
                                       seed=report.boot_seed)
        modes = g["input_mode"].dropna()
        input_mode = str(modes.mode().iloc[0]) if not modes.empty else "n/a"
        run_id = record.add_summary_run(arch, protocol, input_mode, values, len(g), float(g["n_train"].mean()),
                                        float(g["n_test"].mean()), report.primary_metric)
        written.append({"arch": arch, "protocol": protocol, "run_id": run_id})
    return written


def write_outputs(report: Report, out_dir: Path) -> dict[str, Path]:
    """Write report.md, report.html, report.json and the figure PNGs; returns name -> path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, text in (("md", render_markdown(report)), ("html", render_html(report)), ("json", render_json(report))):
        paths[name] = out_dir / f"report.{name}"
        paths[name].write_text(text, encoding="utf-8")
    for name, png in report.figures.items():
        paths[name] = out_dir / f"{name}.png"
        paths[name].write_bytes(png)
    return paths


def generate(run_id: str | None = None, experiment: str = "neipalette", out_dir: Path | None = None, *,
             log: bool = True, tracking_uri: str | None = None) -> tuple[Report, dict[str, Path]]:
    """Read, compute, (optionally) write missing summary runs, write the files and log them on the parent."""
    record = load_benchmark(run_id, experiment, tracking_uri=tracking_uri)
    report = build_report(record)
    if log:
        report.summary_runs_written = write_missing_summaries(record, report)
    paths = write_outputs(report, out_dir or Path("reports") / record.parent.run_id)
    if log:
        record.log_files(paths.values(), artifact_path="report")
    return report, paths


def _report_benchmark(run_id: str | None, experiment: str, out_dir: Path | None,
                      no_log: bool) -> tuple[Report, dict[str, Path]]:
    """`generate`, and under `mlflow run . -e report` the run it made becomes `report of <benchmark>`, nested under
    the parent run it reports (never an anonymous top-level run per call)."""
    from benchmark.tracking.report_run import name_report_run, project_run

    project = project_run()
    if project is not None and project.is_benchmark and run_id is None:
        run_id = project.run_id
    if experiment:
        report, paths = generate(run_id, experiment, out_dir, log=not no_log)
    elif project is not None and project.experiment_name != "neipalette" and run_id is None:
        try:  # `mlflow run -e benchmark` without --experiment-name writes into MLflow's Default experiment
            report, paths = generate(None, project.experiment_name, out_dir, log=not no_log)
        except TrackingError:
            report, paths = generate(None, "neipalette", out_dir, log=not no_log)
    else:
        report, paths = generate(run_id, "neipalette", out_dir, log=not no_log)
    if project is not None and not no_log:
        name_report_run(project, report.header["run_id"], report.header["run_name"])
    return report, paths


@click.command()
@click.option("--run-id", default=None,
              help="Parent run to report (any status). Default (or 'latest'): latest FINISHED parent.")
@click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", default="", show_envvar=True,
              help="MLflow experiment to search.  [default: neipalette; under `mlflow run`, its run's experiment "
                   "first, then neipalette]")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder.  [default: reports/<run-id>/]")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default=None,
              help="Also print this format to stdout.")
@click.option("--no-log", is_flag=True, help="Write nothing to MLflow (no summary runs, no report artifacts).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def main(run_id: str | None, experiment: str, out_dir: Path | None, fmt: str | None, no_log: bool,
         verbose: bool, debug: bool) -> None:
    """Report a NeiPalette benchmark from MLflow (tracking URI: MLFLOW_TRACKING_URI, else MLflow's default)."""
    configure_mlflow_env()
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mlflow").setLevel(logging.DEBUG if verbose else logging.WARNING)  # no store-creation chatter
    # MLflow's SQL store logs each database error with a traceback before raising it: reported here in one line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.DEBUG if verbose or debug else logging.CRITICAL)
    if run_id in ("", "latest"):
        run_id = None
    with error_boundary(debug=debug, classifiers=(describe_tracking_failure,)):
        from benchmark.tracking.sweep import is_sweep_run

        if run_id is not None and is_sweep_run(run_id):  # a sweep run: learning curves, power, rater panels
            from benchmark.report.sweep import generate_sweep_report

            _, paths = generate_sweep_report(run_id, out_dir, log=not no_log)
        else:
            report, paths = _report_benchmark(run_id, experiment, out_dir, no_log)
    if fmt:
        click.echo(paths[fmt].read_text(encoding="utf-8"))
    click.echo(f"report written to {paths['md'].parent}", err=True)

