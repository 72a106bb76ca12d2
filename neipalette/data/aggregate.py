"""`neipalette data aggregate`: ratings.csv -> majority label in outfits.csv, plus agreement.json.

Each rater's current vote per outfit comes from replaying ratings.csv (`neipalette.data.ratings`); skips
and cleared votes are not votes. The label is the majority of the votes; a tie follows the tie rule
(`negative` by default, as the generator does: positive needs a strict majority; or `positive`, or
`unlabelled` to leave the cell empty). Outfits nobody voted on keep whatever label they had. Both files
are replaced atomically (written beside, fsync'd, renamed).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neipalette.data.agreement import (
    TIE_RULES, bootstrap, fleiss_kappa, krippendorff_alpha_nominal, majority_labels, plug_in_ceiling, rater_ceiling,
)
from neipalette.data.dataset import load_dataset
from neipalette.data.ratings import RATINGS_FILE, VOTES, current_states, read_ratings
from neipalette.errors import DatasetError

log = logging.getLogger(__name__)

AGREEMENT_FILE = "agreement.json"
CEILING_ESTIMATOR = ("empirical Bayes: beta-binomial prior for P(rater votes positive) fit by maximum marginal "
                     "likelihood; mean posterior expected accuracy of the best classifier of the majority label")
# Measured, not assumed: estimate − true Bayes accuracy over 300 generated datasets of 40 outfits and 5 raters
# (default generator, seeds 1000-1299; tests/data/test_rater_bias.py checks it on 100 of them).
CEILING_BIAS = {"empirical_bayes": -0.017, "plug_in": 0.013, "se": 0.002, "n_outfits": 40, "n_raters": 5,
                "datasets": 300}
BIAS_NOTE = (f"biased: on the generator at {CEILING_BIAS['n_outfits']} outfits and {CEILING_BIAS['n_raters']} raters "
             f"its mean error against the true Bayes accuracy was {CEILING_BIAS['empirical_bayes']:+.3f} "
             f"({CEILING_BIAS['datasets']} simulated datasets; plug-in {CEILING_BIAS['plug_in']:+.3f})")


@dataclass(frozen=True)
class AggregateOptions:
    tie: str = "negative"
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.tie not in TIE_RULES:
            raise ValueError(f"tie must be one of {TIE_RULES}, got {self.tie!r}")


def vote_counts(ids: list[str], states: dict[tuple[str, str], str]) -> np.ndarray:
    """(outfits x 2) counts of negative and positive votes, in `ids` order."""
    index = {oid: i for i, oid in enumerate(ids)}
    counts = np.zeros((len(ids), 2), dtype=np.int64)
    for (oid, _), label in states.items():
        if label in VOTES:
            counts[index[oid], 1 if label == "positive" else 0] += 1
    return counts


def aggregate(root: str | Path, options: AggregateOptions | None = None) -> dict:
    """Write majority labels into outfits.csv and agreement.json; returns what agreement.json holds."""
    options = options or AggregateOptions()
    root = Path(root)
    ds = load_dataset(root, require_labels=False, check_images=False)
    path = root / RATINGS_FILE
    if not path.is_file():
        raise DatasetError(f"{path} not found; rate the outfits first with: neipalette label {root} --rater NAME")
    rows = read_ratings(path)
    ids = ds.outfit_ids
    unknown = sorted({r["outfit_id"] for r in rows} - set(ids))
    if unknown:
        raise DatasetError(
            f"{path} rates outfit '{unknown[0]}' that outfits.csv does not list ({len(unknown)} unknown ids); "
            "remove those rows or restore the outfit"
        )
    states = current_states(rows)
    counts = vote_counts(ids, states)
    labels = majority_labels(counts, options.tie)
    summary = _summary(counts, labels, states, options)
    # outfits left without a label in outfits.csv: voted without a majority, or never voted and never labelled
    summary["unlabelled_ids"] = [oid for oid, lab, c, o in zip(ids, labels, counts, ds.outfits)
                                 if lab == -1 and (c.sum() > 0 or o.label is None)]
    _write_labels(root, ids, counts, labels)
    _atomic_write(root / AGREEMENT_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("aggregated %d votes of %d raters into %s", int(counts.sum()), len(summary["raters"]), root)
    return summary


def _summary(counts: np.ndarray, labels: np.ndarray, states: dict, options: AggregateOptions) -> dict:
    n = counts.sum(axis=1)
    raters = Counter(rater for (_, rater), label in states.items() if label in VOTES)
    skips = sum(label == "skip" for label in states.values())
    voted = n >= 1
    ties = int(((counts[:, 0] == counts[:, 1]) & voted).sum())
    boot = {"n_boot": options.n_boot, "seed": options.seed, "confidence": 0.95,
            "method": "percentile bootstrap, outfits resampled with replacement"}
    out = {
        "n_outfits": int(len(counts)),
        "n_voted": int(voted.sum()),
        "n_votes": int(n.sum()),
        "n_skips": skips,
        "raters": dict(sorted(raters.items())),
        "raters_per_outfit": {str(k): int(v) for k, v in sorted(Counter(n.tolist()).items())},
        "tie_rule": options.tie,
        "n_ties": ties,
        "labels": {"positive": int((labels == 1).sum()), "negative": int((labels == 0).sum()),
                   "unlabelled": int((labels == -1).sum())},
        "bootstrap": boot,
    }
    multi = counts[n >= 2]
    if len(multi) >= 2:
        out["fleiss_kappa"] = bootstrap(fleiss_kappa, multi, n_boot=options.n_boot, seed=options.seed).as_dict()
        out["krippendorff_alpha"] = bootstrap(krippendorff_alpha_nominal, multi, n_boot=options.n_boot,
                                              seed=options.seed).as_dict()
    else:
        out["fleiss_kappa"] = out["krippendorff_alpha"] = None  # needs outfits rated by two or more raters
    rated = counts[voted]
    if len(multi) >= 2:
        ceiling = bootstrap(lambda c: rater_ceiling(c, options.tie), rated, n_boot=options.n_boot, seed=options.seed)
        out["noise_ceiling"] = {**ceiling.as_dict(), "estimator": CEILING_ESTIMATOR, "measured_bias": CEILING_BIAS,
                                "plug_in": round(plug_in_ceiling(rated, options.tie), 6),
                                "label": "rater-based noise ceiling (estimate from ratings.csv)"}
    else:
        out["noise_ceiling"] = None
    return out


def _write_labels(root: Path, ids: list[str], counts: np.ndarray, labels: np.ndarray) -> None:
    path = root / "outfits.csv"
    text = path.read_text(encoding="utf-8-sig")
    table = [row for row in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in row)]
    header = [c.strip().lower() for c in table[0]]
    col, id_col = header.index("label"), header.index("outfit_id")
    new = {oid: ("positive" if lab == 1 else "negative" if lab == 0 else "")
           for oid, lab, c in zip(ids, labels, counts) if c.sum() > 0}
    for row in table[1:]:
        row.extend([""] * (len(header) - len(row)))
        oid = row[id_col].strip()
        if oid in new:
            row[col] = new[oid]
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    _atomic_write(path, buf.getvalue())


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def summary_text(s: dict) -> str:
    """The printout of `neipalette data aggregate`."""
    per = ", ".join(f"{k} raters: {v}" for k, v in s["raters_per_outfit"].items())
    lab = s["labels"]
    lines = [
        f"votes:     {s['n_votes']} from {len(s['raters'])} raters ({', '.join(f'{r} {n}' for r, n in s['raters'].items())}); "
        f"{s['n_skips']} skips",
        f"outfits:   {s['n_outfits']} ({per})",
        f"labels:    {lab['positive']} positive, {lab['negative']} negative, {lab['unlabelled']} unlabelled; "
        f"{s['n_ties']} ties -> {s['tie_rule']}",
    ]
    for key, name in (("fleiss_kappa", "Fleiss' kappa"), ("krippendorff_alpha", "Krippendorff's alpha (nominal)")):
        iv = s[key]
        lines.append(f"{name}: " + (f"{iv['estimate']:.3f} [{iv['ci_low']:.3f}, {iv['ci_high']:.3f}]" if iv
                                    else "n/a (needs outfits rated by two or more raters)"))
    c = s["noise_ceiling"]
    lines.append("rater-based noise ceiling (estimate): " + (
        f"{c['estimate']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] (empirical Bayes, {BIAS_NOTE}; plug-in of raw "
        f"vote fractions {c['plug_in']:.3f})" if c else "n/a (needs outfits rated by two or more raters)"))
    lines.append(f"95% intervals: {s['bootstrap']['method']}, {s['bootstrap']['n_boot']} resamples")
    return "\n".join(lines)


def read_rater_ceiling(root: str | Path) -> dict | None:
    """agreement.json's noise_ceiling entry for a dataset folder, or None if there is none."""
    path = Path(root) / AGREEMENT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("noise_ceiling")
    except (OSError, ValueError, AttributeError):
        return None


def read_agreement(root: str | Path) -> dict | None:
    """agreement.json's Fleiss' kappa and Krippendorff's alpha (each estimate, ci_low, ci_high, or None) with the
    votes and raters behind them, for a dataset folder; None if it has no agreement.json."""
    try:
        summary = json.loads((Path(root) / AGREEMENT_FILE).read_text(encoding="utf-8"))
        return {k: summary.get(k) for k in ("fleiss_kappa", "krippendorff_alpha", "n_votes", "raters", "bootstrap")}
    except (OSError, ValueError, AttributeError):
        return None


__all__ = ["AGREEMENT_FILE", "AggregateOptions", "BIAS_NOTE", "CEILING_BIAS", "aggregate", "read_agreement",
           "read_rater_ceiling", "summary_text", "vote_counts"]
