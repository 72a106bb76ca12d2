"""Generated datasets of a sweep: one pool per rater panel, nested class-balanced subsets per size.

A subset of n outfits takes the first n/2 positive and the first n/2 negative outfits of the pool (in
generation order), so every smaller dataset is contained in every larger one and shares its image files
(hard links, or copies across file systems): the embedding cache, keyed on image content, embeds each image
once for the whole sweep. Folders are built next to their target and renamed, never left half-written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from neipalette.errors import UserError

from benchmark.sweep.config import SweepConfig, SweepPoint
from neipalette.data.synth import GENERATOR_VERSION, SynthConfig, generate_dataset

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]


def synth_config(cfg: SweepConfig, point: SweepPoint) -> SynthConfig:
    """The generator settings of the point's pool (max(sizes) outfits, the point's raters and noise)."""
    kwargs = dict(cfg.generator)
    kwargs["n_outfits"] = max(cfg.sizes)
    if point.n_raters is not None:
        kwargs["n_raters"] = point.n_raters
    if point.sigma is not None:
        kwargs["sigma"] = point.sigma
    return SynthConfig(**kwargs)


def _slug(scfg: SynthConfig) -> str:
    """A readable folder name; settings beyond n, seed, K and sigma enter as a short hash."""
    d = asdict(scfg)
    parts = [f"v{GENERATOR_VERSION}", f"n{d.pop('n_outfits')}", f"seed{d.pop('seed')}", f"k{d.pop('n_raters')}",
             f"s{d.pop('sigma'):g}"]
    rest = json.dumps(d, sort_keys=True, default=list)
    return "pool-" + "_".join(parts) + "_" + hashlib.sha256(rest.encode()).hexdigest()[:8]


def data_root(cfg: SweepConfig) -> Path:
    root = Path(cfg.data_dir)
    return root if root.is_absolute() else REPO / root


def ensure_pool(cfg: SweepConfig, point: SweepPoint) -> Path:
    """The generated pool for the point's rater panel, generating it on first use."""
    scfg = synth_config(cfg, point)
    path = data_root(cfg) / _slug(scfg) / "pool"
    if (path / "outfits.csv").is_file():
        recorded = json.loads((path / "synth.json").read_text()).get("config") if (path / "synth.json").is_file() else None
        if recorded != json.loads(json.dumps(asdict(scfg))):
            raise UserError(f"{path} was generated with other settings than this sweep's; delete {path.parent} "
                             "(it is rebuilt) or point data_dir elsewhere")
    else:
        log.info("generating sweep pool %s", path)
        summary = generate_dataset(scfg, path)
        log.info("pool %s: ceiling %.3f, %.0f s", path.parent.name, summary.ceiling, summary.seconds)
    return path


def ensure_subset(pool: Path, n: int) -> Path:
    """The nested, class-balanced subset of the first n/2 positives and n/2 negatives of `pool`."""
    out = pool.parent / f"n{n:05d}"
    if (out / "outfits.csv").is_file():
        return out
    outfits = pd.read_csv(pool / "outfits.csv", dtype=str, keep_default_na=False)
    pos = outfits.index[outfits["label"].isin(["positive", "1"])]
    neg = outfits.index[outfits["label"].isin(["negative", "0"])]
    n_pos, n_neg = n // 2, n - n // 2
    if len(pos) < n_pos or len(neg) < n_neg:
        raise UserError(f"pool {pool} has {len(pos)} positive / {len(neg)} negative outfits, too few for a "
                         f"balanced subset of {n}; raise the pool size (the largest of sizes)")
    keep = sorted([*pos[:n_pos], *neg[:n_neg]])
    sub = outfits.loc[keep]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=pool.parent))
    try:
        sub.to_csv(tmp / "outfits.csv", index=False, lineterminator="\n")
        if (pool / "truth.csv").is_file():
            truth = pd.read_csv(pool / "truth.csv", dtype={"outfit_id": str})
            truth[truth["outfit_id"].isin(set(sub["outfit_id"]))].to_csv(
                tmp / "truth.csv", index=False, float_format="%.6f", lineterminator="\n")
        meta = json.loads((pool / "synth.json").read_text()) if (pool / "synth.json").is_file() else {}
        meta["subset"] = {"of": str(pool.name), "n_outfits": n, "rule": "first n/2 positives and negatives"}
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        for rel in (*sub["top"], *sub["bottom"]):
            dst = tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(pool / rel, dst)
        if out.exists():  # another process finished it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
            return out
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def point_dataset(cfg: SweepConfig, point: SweepPoint) -> Path:
    return ensure_subset(ensure_pool(cfg, point), point.n_outfits)
