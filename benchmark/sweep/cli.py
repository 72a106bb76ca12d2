"""`python -m benchmark.sweep`: learning-curve and rater sweeps through the ordinary benchmark (click)."""

from __future__ import annotations

import json
import logging
import signal
import sys

import click

from benchmark.tracking.env import configure_mlflow_env
from benchmark.tracking.store import describe_tracking_failure
from neipalette.errors import error_boundary


def _sigterm(signum, frame):  # runs are closed, not left RUNNING
    raise KeyboardInterrupt(f"signal {signum}")


@click.command()
@click.option("--config", "config_path", default="experiments/learning-curve.yaml", show_default=True,
              help="Sweep YAML (experiments/learning-curve.yaml, experiments/raters.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a sweep key (dotted; benchmark.* for the benchmark settings).")
@click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", default=None, show_envvar=True,
              help="MLflow experiment (overrides benchmark.experiment; --set benchmark.experiment=... wins).")
@click.option("--resume", is_flag=True, help="Continue the latest unfinished sweep with the same config.")
@click.option("--report/--no-report", default=True, show_default=True, help="Write the sweep report at the end.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def main(config_path, overrides, experiment, resume, report, quiet, verbose, debug) -> None:
    """One MLflow sweep run; one child benchmark per (size, raters, noise), fold and summary runs beneath."""
    configure_mlflow_env(verbose=verbose, debug=debug)
    logging.basicConfig(level=logging.DEBUG if verbose or debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("neipalette.models.registry").setLevel(logging.INFO if verbose else logging.WARNING)
    signal.signal(signal.SIGTERM, _sigterm)
    with error_boundary(debug=debug, interrupted="interrupted: finished points and folds are kept; continue with "
                        "--resume", classifiers=(describe_tracking_failure,)):
        extra = [f"benchmark.experiment={json.dumps(experiment)}"] if experiment else []
        outcome = _sweep(config_path, (*extra, *overrides), resume, quiet)
        click.echo(f"sweep run {outcome.sweep_run_id}: {outcome.n_points} points ({outcome.n_done_before} done "
                   f"before), archs {', '.join(outcome.archs) or 'none'}, {outcome.seconds:.0f} s")
        click.echo(f"MLflow store: {outcome.tracking_uri}")
        if report and outcome.complete:
            from benchmark.report.sweep import generate_sweep_report

            _, paths = generate_sweep_report(outcome.sweep_run_id)
            click.echo(f"sweep report: {paths['md']}")
        else:
            click.echo(f"report:       python -m benchmark.report --run-id {outcome.sweep_run_id}")
    if not outcome.complete:
        click.echo("error: some points did not finish (see their benchmark runs); rerun with --resume", err=True)
        sys.exit(1)


def _sweep(config_path, overrides, resume, quiet):
    from benchmark.sweep.config import load_sweep_config
    from benchmark.sweep.runner import run_sweep

    cfg = load_sweep_config(config_path, list(overrides))

    def on_point(point, outcome, seconds):
        t = outcome.timings
        click.echo(f"point {point.key}: benchmark {outcome.parent_run_id}, {outcome.n_run} fold jobs, "
                   f"{outcome.n_failed} failed, {seconds:.0f} s (embed {t.get('embed_s', 0):.0f} s, "
                   f"tune+fit {t.get('fit_s', 0):.0f} s, log {t.get('log_s', 0):.0f} s)", err=True)

    return run_sweep(cfg, resume=resume, progress=not quiet, on_point=on_point)

if __name__ == "__main__":
    main()
