"""The `neipalette` command line (click). Library code logs; this module prints."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from neipalette import __version__
from neipalette.errors import DatasetError, UserError, error_boundary

# Each command imports what it needs inside its function: `neipalette predict` must not pay for the dataset
# checks' imports, nor `neipalette label` for MLflow's.


log = logging.getLogger(__name__)


class _Group(click.Group):
    """The command's one error boundary: known failures (bad dataset, unwritable or full disk) are one line and
    exit status 2; anything else is one line plus a --debug hint, exit status 1; never a traceback without --debug."""

    def invoke(self, ctx: click.Context):
        with error_boundary(debug=bool(ctx.find_root().params.get("debug")),
                            passthrough=(click.exceptions.Exit, click.ClickException, click.exceptions.Abort)):
            return super().invoke(ctx)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="neipalette")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error.")
def main(verbose: bool, debug: bool) -> None:
    """NeiPalette: outfit colour-harmony datasets and benchmarks."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command("label")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--rater", required=True, help="Your name as it goes into ratings.csv (letters, digits, _ . -).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
def label_cmd(dataset_dir: Path, rater: str, port: int) -> None:
    """Label a dataset in the browser: one outfit at a time, keys N/P (or arrows), S skip, U undo; at the end,
    R offers the skipped outfits again.

    Every vote is appended to DATASET/ratings.csv and synced to disk at once; reopening resumes at your
    first unlabelled outfit. Then run `neipalette data aggregate DATASET`.
    """
    from neipalette.data.labelling import HOST, make_label_server, open_session

    session = open_session(dataset_dir, rater)
    server = make_label_server(session, port)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request unless -v
    state = session.state()
    click.echo(f"labelling {state['total']} outfits of {dataset_dir} as {rater} ({state['n_done']} done); "
               f"open http://{HOST}:{server.port}/  (Ctrl+C to stop; votes are saved as you click)")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped; every vote is in ratings.csv")
    finally:
        server.server_close()


@main.command("predict")
@click.option("--model", "model_uri", required=True,
              help="MLflow model: runs:/<run-id>/model or models:/neipalette-<arch>@<alias>.")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path))
@click.option("--pairs", "pairs_csv", type=click.Path(path_type=Path), default=None,
              help="CSV with columns top,bottom (paths relative to the CSV) instead of TOP BOTTOM.")
@click.option("--out", "out_csv", type=click.Path(path_type=Path), default=None,
              help="Also write top,bottom,p_harmonious,label to this CSV.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else MLflow's).")
def predict_cmd(model_uri: str, images: tuple[Path, ...], pairs_csv: Path | None, out_csv: Path | None,
                tracking_uri: str | None) -> None:
    """P(harmonious) and the label (positive at >= 0.5) of TOP BOTTOM, or of every pair in --pairs."""
    import pandas as pd

    from neipalette.models.predict import check_images, read_pairs, result_frame, result_text

    if pairs_csv is not None and images:
        raise DatasetError("give either TOP BOTTOM or --pairs pairs.csv, not both")
    if pairs_csv is None and len(images) != 2:
        raise DatasetError(f"expected two images (TOP BOTTOM), got {len(images)}; or pass --pairs pairs.csv")
    pairs = read_pairs(pairs_csv) if pairs_csv else pd.DataFrame({"top": [str(images[0])], "bottom": [str(images[1])]})
    check_images(pairs)
    tmp = _claim_output(out_csv) if out_csv is not None else None  # before predicting: nothing is half-written
    try:
        model = _load_model(model_uri, tracking_uri)
        if (model.metadata.metadata or {}).get("weights") == "random-init":  # set when logged (benchmark.tracking)
            click.echo(f"WARNING: {model_uri} has a randomly initialised backbone (weights=random-init); its "
                       "scores do not reflect ImageNet transfer", err=True)
        proba = model.predict(pairs)
        frame = result_frame(pairs, proba)
        click.echo(result_text(frame))
        if out_csv is not None and tmp is not None:
            frame.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6f")
            tmp.replace(out_csv)
            click.echo(f"wrote {out_csv.absolute()}")
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _claim_output(out_csv: Path) -> Path:
    """Create --out's folders and its temporary file now (an unwritable place fails here, one line); the file
    itself is replaced only once every prediction is written."""
    if out_csv.is_dir():
        raise UserError(f"--out {out_csv} is a folder; give a file path, e.g. --out {out_csv / 'predictions.csv'}")
    folder = out_csv.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"--out {out_csv}: {folder} is a file, not a folder; choose another path")
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_csv.with_name(f".{out_csv.name}.partial")
    tmp.open("w").close()
    return tmp


def _load_model(uri: str, tracking_uri: str | None):
    """An MLflow pyfunc model; mlflow is imported here only, so the rest of the CLI starts without it.

    MLflow's check of the model's pip requirements against this environment (~2 s of package metadata scans)
    runs only with -v; without it a mismatch shows up, if at all, as an import error."""
    import mlflow.pyfunc  # lazy: the one mlflow edge outside benchmark/tracking (tests/test_layout.py)
    from mlflow.exceptions import MlflowException

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # stdout/stderr carry results, not bars
    try:
        return mlflow.pyfunc.load_model(uri, suppress_warnings=not log.isEnabledFor(logging.DEBUG))
    except (MlflowException, OSError, ValueError) as exc:
        first = (str(getattr(exc, "message", exc)).strip().splitlines() or ["?"])[0]
        if known := _known_aliases(uri):
            raise DatasetError(f"cannot load model {uri}: {known} (tracking URI {mlflow.get_tracking_uri()})") from None
        raise DatasetError(
            f"cannot load model {uri} ({first[:200]}); check the run id or name@alias and the tracking URI "
            f"({mlflow.get_tracking_uri()})"
        ) from None


def _known_aliases(uri: str) -> str | None:
    """For models:/<name>@<alias>: the aliases (or, for an unknown name, the registered models) that exist."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    if not uri.startswith("models:/") or "@" not in uri:
        return None
    name, _, alias = uri[len("models:/"):].partition("@")
    client = MlflowClient()
    try:
        aliases = client.get_registered_model(name).aliases
    except MlflowException:
        try:
            names = sorted(m.name for m in client.search_registered_models(max_results=100))
        except MlflowException:
            return None
        return f"no registered model {name}; registered models: {', '.join(names) or 'none'}"
    if not aliases:
        return f"{name} has no aliases; use models:/{name}/<version>"
    listed = ", ".join(f"{a} (version {v})" for a, v in sorted(aliases.items()))
    return f"{name} has no alias {alias!r}; its aliases: {listed}; e.g. models:/{name}@{min(aliases)}"


@main.group(cls=_Group)
def data() -> None:
    """Create, import and check datasets."""


@data.command("synth")
@click.option("--outfits", "n_outfits", type=click.IntRange(min=2), default=40, show_default=True, help="Number of outfits.")
@click.option("--seed", type=int, default=7, show_default=True, help="Random seed.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder to write (must not exist or be empty).")
@click.option("--raters", type=click.IntRange(min=1), default=5, show_default=True, help="Simulated raters per outfit (odd).")
@click.option("--sigma", type=click.FloatRange(min=0.0), default=0.5, show_default=True,
              help="Rater noise (std of each rater's score).")
@click.option("--size", "image_size", type=click.IntRange(min=32), default=160, show_default=True, help="Image side in pixels.")
@click.option("--label-model", type=click.Choice(["panel", "ou_luo"]), default="panel", show_default=True,
              help="panel: raters weigh harmony, hue relation, lightness contrast and patterns (version 2); "
                   "ou_luo: raters see Ou & Luo harmony only (version 1, byte-identical to old datasets).")
def synth_cmd(n_outfits: int, seed: int, out_dir: Path, raters: int, sigma: float, image_size: int,
              label_model: str) -> None:
    """Generate a synthetic outfit dataset with known P(positive | outfit)."""
    from neipalette.data.synth import SynthConfig, generate_dataset

    cfg = SynthConfig(n_outfits=n_outfits, seed=seed, n_raters=raters, sigma=sigma, image_size=image_size,
                      label_model=label_model)
    summary = generate_dataset(cfg, out_dir)
    click.echo(
        f"wrote {summary.n_outfits} outfits ({summary.n_positive} positive, {summary.n_negative} negative; "
        f"label model {summary.label_model}) to {out_dir} in {summary.seconds:.1f} s; "
        f"noise ceiling (Bayes accuracy) {summary.ceiling:.3f}"
    )


@data.command("check")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--folds", type=click.IntRange(min=2), default=None, help="Also check each class has this many outfits.")
def check_cmd(dataset_dir: Path, folds: int | None) -> None:
    """Validate a dataset folder and print a summary."""
    from neipalette.data.dataset import load_dataset, summarize

    ds = load_dataset(dataset_dir, min_per_class=folds, require_labels=False)
    click.echo(summarize(ds))
    unlabelled = sum(o.label is None for o in ds.outfits)
    if unlabelled:
        raise DatasetError(
            f"{unlabelled} of {len(ds.outfits)} outfits are unlabelled; label them in the browser with "
            f"`neipalette label {dataset_dir} --rater NAME`, then `neipalette data aggregate {dataset_dir}` "
            "(or fill the label column of outfits.csv with positive or negative)"
        )


@data.command("sheet")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--out", "out_png", type=click.Path(path_type=Path), required=True, help="PNG to write.")
@click.option("--columns", type=click.IntRange(min=1), default=8, show_default=True, help="Outfits per row.")
@click.option("--thumb", type=click.IntRange(min=16), default=120, show_default=True, help="Tile side in pixels.")
def sheet_cmd(dataset_dir: Path, out_png: Path, columns: int, thumb: int) -> None:
    """Contact sheet: every outfit (top above bottom) with its id and label (and P(positive) with truth.csv)."""
    from neipalette.data.dataset import load_dataset
    from neipalette.data.synth import contact_sheet

    ds = load_dataset(dataset_dir, require_labels=False)  # every image decodes before anything is drawn
    contact_sheet(dataset_dir, out_png, columns=columns, thumb=thumb)
    n_unl = sum(o.label is None for o in ds.outfits)
    click.echo(f"wrote {out_png}: {len(ds.outfits)} outfits ({n_unl} unlabelled)")


@data.command("aggregate")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--ties", type=click.Choice(["negative", "positive", "unlabelled"]), default="negative",
              show_default=True, help="Label of an outfit with as many positive as negative votes.")
@click.option("--boot", "n_boot", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Bootstrap resamples for the 95% intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
def aggregate_cmd(dataset_dir: Path, ties: str, n_boot: int, seed: int) -> None:
    """Majority label from ratings.csv into outfits.csv; agreement and a rater-based ceiling into agreement.json."""
    from neipalette.data.aggregate import AGREEMENT_FILE, AggregateOptions, aggregate, summary_text

    summary = aggregate(dataset_dir, AggregateOptions(tie=ties, n_boot=n_boot, seed=seed))
    click.echo(summary_text(summary))
    if missing := summary["unlabelled_ids"]:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        click.echo(f"warning: {len(missing)} outfits have no label ({shown}); the benchmark refuses the dataset "
                   f"until they do: finish them with `neipalette label {dataset_dir} --rater NAME` (skipped "
                   "outfits come back in a second round), then aggregate again")
    click.echo(f"wrote labels to {dataset_dir / 'outfits.csv'} and {dataset_dir / AGREEMENT_FILE}")


@data.command("import-deepfashion2")
@click.option("--root", type=click.Path(path_type=Path), required=True, help="A DeepFashion2 split (image/, annos/).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder to write.")
@click.option("--include-outerwear", is_flag=True, help="Also accept categories 3 and 4 (outwear) as tops.")
@click.option("--occlusion", "max_occlusion", type=click.IntRange(1, 3), default=2, show_default=True,
              help="Most occlusion kept: 1 slight, 2 medium, 3 heavy.")
@click.option("--viewpoint", type=click.Choice(["worn", "not-worn", "any"]), default="worn", show_default=True,
              help="Garments worn by a person (frontal, side/back), shop shots not worn, or any.")
@click.option("--min-crop", type=click.IntRange(min=1), default=32, show_default=True,
              help="Shorter side of each garment's box, in pixels.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable annotation or image instead of skipping it.")
def import_df2_cmd(root: Path, out_dir: Path, include_outerwear: bool, max_occlusion: int, viewpoint: str,
                   min_crop: int, strict: bool) -> None:
    """Crop one person's top and bottom per photo (masked to their segmentation) into an unlabelled dataset.

    A top and a bottom form an outfit when the bottom's box lies below the top's and overlaps it
    horizontally; photos with no such pair or several are skipped. Outside each garment's segmentation the
    crop is mid grey (128, 128, 128). pair_id goes into the group column, source into its own column.
    """
    from neipalette.data.deepfashion2 import SUMMARY_FILE, ImportOptions, import_deepfashion2_report

    options = ImportOptions(include_outerwear=include_outerwear, max_occlusion=max_occlusion, viewpoint=viewpoint,
                            min_crop=min_crop, strict=strict)
    report = import_deepfashion2_report(root, out_dir, options=options)
    click.echo(f"read {report.n_photos} photos; skipped {report.skipped_text()}"
               + (f"; names in {out_dir / SUMMARY_FILE}" if report.skipped else ""))
    if hint := report.outerwear_text():
        click.echo(hint)
    click.echo(
        f"wrote {report.n_outfits} unlabelled outfits to {out_dir}; label them with "
        f"`neipalette label {out_dir} --rater NAME`, then run: neipalette data aggregate {out_dir}"
    )
