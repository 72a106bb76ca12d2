"""`python -m benchmark.perf`: a fixed nested-CV-shaped workload, cached vs uncached; prints one JSON line.

`--workload default` (or `quick`): the whole benchmark of experiments/<name>.yaml end to end, as `python -m
benchmark.run --config ...` runs it, in a temporary MLflow store and embedding cache (nothing of the user's is
read or written); prints wall_s, cpu_s (user+sys of this process from its start, imports included, plus its
children), the per-phase split the runner measures, the fold-job count and the store's size.

Head workload (default): data/synthetic-40, resnet18, pair input, 128 px, weights none, one outer fold of a
5-fold split, 5 trials (fixed learning rates) x 3 inner folds x 20 epochs, plus the refit and the outer-test
prediction.

`--fine-tune last_block`: efficientnet_lite0 (weights none), pair input, 128 px, one outer fold shaped like
one of experiments/finetune.yaml: 4 trials (fixed learning rates) x 2 inner folds, each a learning curve of 6
epochs scored on its inner validation part after every epoch (as the tuner does), plus the refit and the
outer-test prediction. Cached: the frozen stages run once per image-view (cold: computed in this run; warm:
read from the disk cache, as every outer fold after the first does); naive: every stage is recomputed at every
step.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from sklearn.model_selection import StratifiedKFold

from benchmark.tracking.env import configure_mlflow_env
from neipalette.data.dataset import load_dataset
from neipalette.data.samples import labels_of, make_samples
from neipalette.evaluation.metrics import classification_metrics
from neipalette.models.estimator import CNNConfig, CNNEstimator
from neipalette.seeding import derive_seed, seed_everything

LEARNING_RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
CURVE_LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3)  # the shape of one outer fold of experiments/finetune.yaml
DEFAULTS = {"head": {"arch": "resnet18", "epochs": 20}, "last_block": {"arch": "efficientnet_lite0", "epochs": 6}}
DEFAULT_DATA = Path(__file__).resolve().parent.parent / "data" / "synthetic-40"


def _outer_fold(ds, est: CNNEstimator, seed: int, cache: bool) -> tuple[list, list, np.ndarray, float]:
    """The first outer fold of a seeded stratified 5-fold split as pair samples (train, test), the train labels,
    and the seconds spent warming the embedding cache on both (0 when `cache` is off)."""
    outer_train, outer_test = next(iter(StratifiedKFold(5, shuffle=True, random_state=seed).split(ds.labels, ds.labels)))
    train = make_samples(ds, outer_train, "pair")
    test = make_samples(ds, outer_test, "pair")
    y = labels_of(train)
    t1 = time.perf_counter()
    if cache:
        est.warm(train + test)
    return train, test, y, time.perf_counter() - t1


def workload(cache: bool, cache_dir: Path, *, dataset: Path, arch: str, image_size: int, epochs: int,
             n_views: int, seed: int = 0) -> dict:
    seed_everything(seed)
    ds = load_dataset(dataset)
    t0 = time.perf_counter()
    est = CNNEstimator(CNNConfig(arch=arch, weights="none", input_mode="pair", image_size=image_size,
                                 n_views=n_views, cache=cache, cache_dir=str(cache_dir)), seed=seed)
    t_build = time.perf_counter() - t0
    train, test, y, t_embed = _outer_fold(ds, est, seed, cache)
    metrics, t_fit = [], 0.0
    inner = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(y, y))
    t2 = time.perf_counter()
    for trial, lr in enumerate(LEARNING_RATES):
        for k, (tr, va) in enumerate(inner):
            fit = est.fit([train[i] for i in tr], learning_rate=lr, epochs=epochs, seed=derive_seed(seed, trial, k))
            p = fit.predict_proba([train[i] for i in va])
            metrics.append(classification_metrics(y[va], p))
    refit = est.fit(train, learning_rate=LEARNING_RATES[2], epochs=epochs, seed=derive_seed(seed, "refit"))
    p_test = refit.predict_proba(test)
    metrics.append(classification_metrics(labels_of(test), p_test))
    t_fit = time.perf_counter() - t2
    return {"seconds": time.perf_counter() - t0 - t_build, "build_s": t_build, "embed_s": t_embed,
            "head_fit_s": t_fit, "metrics": metrics, "p_test": p_test.tolist(),
            "forward_images": est.embedder.stats["forward_images"]}


def workload_last_block(cache: bool, cache_dir: Path, *, dataset: Path, arch: str, image_size: int,
                        epochs: int, n_views: int, seed: int = 0) -> dict:
    """Learning-curve trials + refit with fine_tune last_block; `cache=False` recomputes every stage."""
    seed_everything(seed)
    ds = load_dataset(dataset)
    t0 = time.perf_counter()
    est = CNNEstimator(CNNConfig(arch=arch, weights="none", input_mode="pair", fine_tune="last_block",
                                 image_size=image_size, n_views=n_views, cache=cache, cache_dir=str(cache_dir),
                                 device="cpu"), seed=seed)
    t_build = time.perf_counter() - t0
    train, test, y, t_embed = _outer_fold(ds, est, seed, cache)
    t1 = time.perf_counter()
    metrics = []
    inner = list(StratifiedKFold(2, shuffle=True, random_state=seed).split(y, y))
    for trial, lr in enumerate(CURVE_LEARNING_RATES):
        for k, (tr, va) in enumerate(inner):
            for fit in est.fit_epochs([train[i] for i in tr], learning_rate=lr, epochs=epochs,
                                      seed=derive_seed(seed, trial, k)):
                metrics.append(classification_metrics(y[va], fit.predict_proba([train[i] for i in va])))
    refit = est.fit(train, learning_rate=CURVE_LEARNING_RATES[1], epochs=epochs, seed=derive_seed(seed, "refit"))
    p_test = refit.predict_proba(test)
    metrics.append(classification_metrics(labels_of(test), p_test))
    return {"seconds": time.perf_counter() - t0 - t_build, "build_s": t_build, "embed_s": t_embed,
            "head_fit_s": time.perf_counter() - t1, "metrics": metrics, "p_test": p_test.tolist(),
            "forward_images": est.stages.stats["forward_images"]}


def throughput(dataset: Path, arch: str, image_size: int, n_images: int = 64) -> float:
    """Backbone embedding throughput (images/s) on the dataset's garment images, batches of 32."""
    from neipalette.models.embedding import Embedder
    from neipalette.models.registry import build_backbone
    from neipalette.models.views import ViewSpec

    ds = load_dataset(dataset)
    backbone, weights = build_backbone(arch, "none", seed=0)
    emb = Embedder(backbone, weights, ViewSpec(image_size, 1, 0, weights.mean, weights.std), cache=False)
    units = [(p,) for o in ds.outfits for p in (o.top, o.bottom)][:n_images]
    emb.forward(units[:32], [0] * 32)  # warm-up, and view tensors are memoised: time the backbone only
    t0 = time.perf_counter()
    emb.forward(units, [0] * len(units))
    return len(units) / (time.perf_counter() - t0)


def train_speed(arch: str, image_size: int, batch: int = 16, steps: int = 3) -> dict:
    """Training CPU ms per image (forward + backward + Adam step, train mode) of the whole network (`full`) and
    of its last stage on cached activations (`last_block`), same batch: what the two modes cost per image-step.
    Process CPU time, not wall time, so a busy shared machine does not inflate it (run it with one thread)."""
    import copy

    import torch

    from neipalette.models.registry import build_backbone
    from neipalette.models.stages import split_last_stage

    out = {}
    backbone, _ = build_backbone(arch, "none", seed=0)
    trunk, tail = split_last_stage(backbone, arch)
    x = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        acts = trunk(x)
    for mode, net, inp in (("full", backbone, x), ("last_block", tail, acts)):
        net = copy.deepcopy(net)
        for p in net.parameters():
            p.requires_grad_(True)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-4)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            net(inp).float().pow(2).mean().backward()
            opt.step()
        step()  # warm-up
        t0 = time.process_time()
        for _ in range(steps):
            step()
        out[mode] = round(1000 * (time.process_time() - t0) / (steps * batch), 2)
    return out


def end_to_end(config: Path, overrides: tuple[str, ...] = (), store_dir: Path | None = None) -> dict:
    """Run a benchmark config in a fresh temporary store and cache (or in `store_dir`, kept for comparing
    runs); its wall and CPU time and phase split."""
    import resource

    from benchmark.config import load_config
    from benchmark.runner import run_benchmark

    cfg = load_config(config, list(overrides))
    cwd = os.getcwd()
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "NEIPALETTE_CACHE")}
    keep = contextlib.nullcontext(str(store_dir)) if store_dir else None
    with keep or tempfile.TemporaryDirectory(prefix="neipalette-perf-") as d:
        Path(d).mkdir(parents=True, exist_ok=True)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{d}/mlflow.db"
        os.environ["NEIPALETTE_CACHE"] = f"{d}/cache"
        os.chdir(d)  # MLflow's artifact root and the Optuna journal go here
        try:
            t0 = time.perf_counter()
            outcome = run_benchmark(cfg, progress=False)
            wall = time.perf_counter() - t0
            store = sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file() and "cache" not in f.parts)
        finally:
            os.chdir(cwd)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    phases = {k: round(v, 1) for k, v in outcome.timings.items()}
    phases["setup_s"] = round(outcome.seconds - sum(outcome.timings.values()), 1)
    return {"workload": f"{config} (end to end)", "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "phases": phases, "fold_jobs": outcome.n_jobs, "fold_jobs_run": outcome.n_run,
            "failed": outcome.n_failed, "complete": outcome.complete, "store_mb": round(store / 2**20, 1),
            "load_avg_1m": round(os.getloadavg()[0], 2), "torch_threads": _torch_threads()}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@click.command()
@click.option("--workload", type=click.Choice(["head", "default", "quick"]), default="head", show_default=True,
              help="head: the fixed one-fold workload below; default/quick: experiments/<name>.yaml end to end.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Config overrides for --workload default/quick (as benchmark.run's --set).")
@click.option("--store-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="For --workload default/quick: keep the store and cache in this folder (e.g. to compare runs "
                   "with scripts/compare_metrics.py) instead of a temporary one.")
@click.option("--dataset", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--fine-tune", "fine_tune", type=click.Choice(sorted(DEFAULTS)), default="head", show_default=True,
              help="head: frozen backbone, cached embeddings; last_block: cached frozen-stage activations.")
@click.option("--arch", default=None, help="Default: resnet18 (head), efficientnet_lite0 (last_block).")
@click.option("--image-size", type=int, default=128, show_default=True)
@click.option("--epochs", type=int, default=None, help="Default: 20 (head), 6 (last_block).")
@click.option("--n-views", type=int, default=2, show_default=True)
@click.option("--throughput", "with_throughput", is_flag=True,
              help="Also measure embedding images/s of resnet18 and efficientnet_b0 at 128 and 224 px.")
@click.option("--train-speed", "with_train_speed", is_flag=True,
              help="Only measure training CPU ms/image of full vs last_block for the three CNNs at --image-size.")
def main(workload: str, overrides: tuple[str, ...], store_dir: Path | None, dataset: Path, fine_tune: str,
         arch: str | None, image_size: int, epochs: int | None, n_views: int,
         with_throughput: bool, with_train_speed: bool) -> None:
    """Time the workload with the cache (cold, then warm from disk) and without it."""
    os.environ.setdefault("NEIPALETTE_OFFLINE", "1")
    configure_mlflow_env()  # as benchmark.run does: no artifact progress bars or MLflow INFO lines in the timing
    if workload != "head":
        repo = Path(__file__).resolve().parent.parent
        click.echo(json.dumps(end_to_end(repo / "experiments" / f"{workload}.yaml", overrides,
                                         store_dir.resolve() if store_dir else None)))
        return
    if with_train_speed:
        import torch

        click.echo(json.dumps({"train_cpu_ms_per_image": {a: train_speed(a, image_size) for a in
                                                      ("efficientnet_lite0", "resnet18", "efficientnet_b0")},
                               "image_size": image_size, "threads": torch.get_num_threads()}))
        return
    arch = arch or DEFAULTS[fine_tune]["arch"]
    epochs = epochs or DEFAULTS[fine_tune]["epochs"]
    kw = dict(dataset=dataset, arch=arch, image_size=image_size, epochs=epochs, n_views=n_views)
    run = workload_last_block if fine_tune == "last_block" else workload
    with tempfile.TemporaryDirectory() as d:
        cold = run(True, Path(d), **kw)
        warm = run(True, Path(d), **kw)
        uncached = run(False, Path(d), **kw)
    diffs = [abs(a[m] - b[m]) for a, b in zip(cold["metrics"], uncached["metrics"]) for m in a
             if np.isfinite(a[m]) and np.isfinite(b[m])]
    shape = (f"{len(LEARNING_RATES)} trials x 3 inner folds x {epochs} epochs" if fine_tune == "head" else
             f"{len(CURVE_LEARNING_RATES)} trials x 2 inner folds x {epochs}-epoch learning curves")
    out = {
        "workload": f"{dataset.name} {arch} fine_tune={fine_tune} pair {image_size}px weights=none 1 outer fold, "
                    f"{shape} + refit, {n_views} views",
        "cached_s": round(cold["seconds"], 3),
        "cached_warm_disk_s": round(warm["seconds"], 3),
        "uncached_s": round(uncached["seconds"], 3),
        "speedup": round(uncached["seconds"] / cold["seconds"], 1),
        "speedup_warm": round(uncached["seconds"] / warm["seconds"], 1),
        "max_metric_diff": float(max(diffs)),
        "max_prediction_diff": float(np.max(np.abs(np.subtract(cold["p_test"], uncached["p_test"])))),
        "cached_embed_s": round(cold["embed_s"], 3),
        ("cached_head_fit_s" if fine_tune == "head" else "cached_fit_s"): round(cold["head_fit_s"], 3),
        "cached_forward_images": cold["forward_images"],
        "uncached_forward_images": uncached["forward_images"],
        "backbone_build_s": round(cold["build_s"], 3),
    }
    if with_throughput:
        out["embed_img_per_s"] = {f"{a}@{size}px": round(throughput(dataset, a, size), 1)
                                  for a in ("resnet18", "efficientnet_b0") for size in (128, 224)}
    click.echo(json.dumps(out))


if __name__ == "__main__":
    main()
