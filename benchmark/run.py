"""`python -m benchmark.run`: the benchmark command line (click). Prints; the runner logs."""

from __future__ import annotations

import json
import logging
import signal
import sys

import click
from tqdm.auto import tqdm

from benchmark.config import ConfigError, load_config, with_overrides
from benchmark.tracking.env import configure_mlflow_env
from benchmark.tracking.store import describe_tracking_failure
from neipalette.errors import UserError, error_boundary


def _parse_shard(value: str | None) -> tuple[int, int]:
    if not value:
        return (0, 1)
    try:
        i, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected I/N, e.g. 0/2") from None
    if not (n >= 1 and 0 <= i < n):
        raise click.BadParameter(f"shard {value}: need 0 <= I < N")
    return (i, n)


class _IntOrConfig(click.ParamType):
    """An integer, or "config" (what MLproject passes by default) meaning: keep the config file's value."""

    name = "integer|config"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() in ("config", ""):
            return None
        try:
            return int(float(value))
        except (ValueError, OverflowError):  # OverflowError: "1e400" is infinite
            self.fail(f"{value!r} is not an integer or 'config'", param, ctx)


INT_OR_CONFIG = _IntOrConfig()


def _sigterm(signum, frame):  # turn `kill` into KeyboardInterrupt so runs are closed, not left RUNNING
    raise KeyboardInterrupt(f"signal {signum}")


@click.command()
@click.option("--config", "config_path", default="experiments/default.yaml", show_default=True,
              help="YAML config (experiments/*.yaml).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key (dotted).")
@click.option("--experiment", envvar="MLFLOW_EXPERIMENT_NAME", default=None, show_envvar=True,
              help="MLflow experiment (overrides the config's experiment:; --set experiment=... wins over both).")
@click.option("--seed", type=INT_OR_CONFIG, default=None, help="Run seed (overrides the config).")
@click.option("--n-trials", type=INT_OR_CONFIG, default=None, help="Optuna trials per outer fold.")
@click.option("--n-splits", type=INT_OR_CONFIG, default=None, help="Outer CV folds.")
@click.option("--n-repeats", type=INT_OR_CONFIG, default=None, help="Outer CV repeats.")
@click.option("--resume", is_flag=True, help="Continue the latest unfinished run with the same config.")
@click.option("--shard", default=None, metavar="I/N", help="Run only shard I of N of the fold jobs.")
@click.option("--group", default=None, help="Name shared by the workers of one sharded benchmark.")
@click.option("--run-id", default=None, help="Attach to this parent run (same config).")
@click.option("--optuna-storage", default=None, help="Optuna storage URL (default: a journal file beside the MLflow store).")
@click.option("--no-cache", is_flag=True, help="Run the backbone on every step instead of caching embeddings.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (and of failing folds).")
def main(config_path, overrides, experiment, seed, n_trials, n_splits, n_repeats, resume, shard, group, run_id,
         optuna_storage, no_cache, quiet, verbose, debug) -> None:
    """Repeated stratified k-fold + the original 60/20 split, nested Optuna tuning, everything in MLflow."""
    configure_mlflow_env(verbose=verbose, debug=debug)
    logging.basicConfig(level=logging.DEBUG if verbose or debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("neipalette.models.registry").setLevel(logging.INFO if verbose else logging.WARNING)
    signal.signal(signal.SIGTERM, _sigterm)
    with error_boundary(debug=debug, interrupted="interrupted: finished folds are kept; continue with --resume",
                        classifiers=(describe_tracking_failure,)):
        outcome = _run(config_path, experiment_override(experiment) + list(overrides), seed, n_trials, n_splits,
                       n_repeats, resume, shard, group, run_id,
                       optuna_storage, no_cache, quiet)
    _print_outcome(outcome)


def _run(config_path, overrides, seed, n_trials, n_splits, n_repeats, resume, shard, group, run_id,
         optuna_storage, no_cache, quiet):
    try:
        extra = list(overrides) + (["model.cache=false"] if no_cache else [])
        cfg = load_config(config_path, extra)
        cfg = with_overrides(cfg, seed=seed, n_splits=n_splits, n_repeats=n_repeats,
                             **{"tuning.n_trials": n_trials})
        from benchmark.runner import RunOptions, run_benchmark

        if _parse_shard(shard)[1] > 1 and not (group or run_id):
            raise click.BadParameter("--shard I/N with N > 1 needs --group NAME (or --run-id) so the workers share "
                                     "one parent run", param_hint="--shard")
        opts = RunOptions(resume=resume, shard=_parse_shard(shard), group=group, run_id=run_id,
                          optuna_storage=optuna_storage)

        def on_fold(result, i, n):
            m = result.metrics
            tuned = (f" lr={result.params['learning_rate']:.2g} epochs={result.params['epochs']}"
                     if result.tuning else "")
            # through tqdm, so the line goes above the progress bar instead of tearing it
            tqdm.write(f"[{i}/{n}] {result.job.arch:<15} {result.job.protocol:<10} r{result.job.repeat} "
                       f"f{result.job.fold}  acc={m['accuracy']:.3f} auc={m['roc_auc']:.3f}{tuned}", file=sys.stderr)

    except ConfigError as exc:
        raise UserError(str(exc)) from None
    except click.ClickException as exc:
        raise UserError(exc.format_message()) from None
    return run_benchmark(cfg, opts, on_fold=None if quiet else on_fold, progress=not quiet)


def experiment_override(experiment: str | None) -> list[str]:
    """`--experiment` / MLFLOW_EXPERIMENT_NAME as a `--set` override placed before the user's own (which win);
    JSON-quoted, so any name stays a string."""
    return [f"experiment={json.dumps(experiment)}"] if experiment else []


def ui_hint(tracking_uri: str) -> str:
    """How to see the runs: a tracking server already serves its UI; a local store needs `mlflow ui`."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/") + "/"  # `mlflow ui --backend-store-uri http://...` would fail
    return f"mlflow ui --backend-store-uri {tracking_uri} --host 127.0.0.1"


def _print_outcome(outcome) -> None:
    for arch, w in outcome.weights.items():
        click.echo(f"weights {arch}: {w}")
    t = outcome.timings
    click.echo(f"parent run {outcome.parent_run_id}: {outcome.n_run} fold jobs run, {outcome.n_done_before} already "
               f"done, {outcome.n_failed} failed, {outcome.seconds:.0f} s "
               f"(embed {t.get('embed_s', 0):.0f} s, tune+fit {t.get('fit_s', 0):.0f} s, "
               f"log {t.get('log_s', 0):.0f} s, final models {t.get('final_s', 0):.0f} s)")
    click.echo(f"MLflow store: {outcome.tracking_uri}")
    click.echo(f"open the UI:  {ui_hint(outcome.tracking_uri)}")
    click.echo(f"report:       python -m benchmark.report --run-id {outcome.parent_run_id}")
    if outcome.errors:
        what = f"{outcome.n_failed} fold jobs failed" if outcome.n_failed else "the CV folds finished"
        finals = len(outcome.errors) - outcome.n_failed
        if finals:
            what += f"{', and' if outcome.n_failed else ' but'} {finals} final model{'s' if finals > 1 else ''} failed"
        click.echo(f"error: {what}; first: {outcome.errors[0]} — fix that, then rerun with --resume to retry "
                   "(all errors: the FAILED runs' neipalette.error tags)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
