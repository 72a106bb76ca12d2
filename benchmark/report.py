"""The benchmark report: tables like the original study's Tables 2 and 3, with intervals that tell.

`python -m benchmark.report [--run-id ID] [--experiment NAME] [--out DIR] [--format md|json|html]` reads one
benchmark from MLflow (layout: docs/mlflow-layout.md), writes `report.md`, `report.html` (figures embedded,
opens offline), `report.json` and the figure PNGs to DIR, and logs them on the parent run under `report/`.
Statistics: `benchmark.stats` (Nadeau-Bengio corrected t for CV, Wilson / bootstrap for the single split).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import numpy as np
import pandas as pd

from benchmark import figures, stats
from benchmark.tracking.read import BenchmarkRecord, TrackingError, load_benchmark
from neipalette.metrics import METRICS

logger = logging.getLogger(__name__)

CONFIDENCE = 0.95
N_BOOT = 2000
DEFAULT_BOOT_SEED = 0  # used when the parent has no `seed` param
CNN_ARCHS = ("resnet18", "efficientnet_b0")
ARCH_ORDER = ("resnet18", "efficientnet_b0", "chance", "colour_stats", "ou_luo")
ARCH_LABELS = {
    "resnet18": "ResNet18", "efficientnet_b0": "EfficientNet-B0", "chance": "Chance (stratified)",
    "colour_stats": "Colour stats (logistic)", "ou_luo": "Ou & Luo (2006)",
}
PROTOCOL_ORDER = ("cv", "seed_split")
PROTOCOL_LABELS = {"cv": "CV", "seed_split": "60/20 split"}
TABLE2 = (("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
          ("roc_auc", "ROC-AUC"))
CLASS_METRICS = {"positive": ("precision", "recall", "f1"),
                 "negative": ("precision_negative", "recall_negative", "f1_negative")}
COMPARED = ("accuracy", "roc_auc")
CEILING = "ceiling_accuracy"
_POINT_NOTE = "single split: point estimate only"


# -- computation ----------------------------------------------------------------------------------------
@dataclass
class Report:
    """Everything the renderers need, as plain data; `as_json()` is report.json."""

    run_id: str
    header: dict
    groups: list[dict]
    comparisons: list[dict]
    ceiling: list[dict]
    ceiling_gaps: list[dict]
    seed_split: list[dict]
    missing_folds: list[dict]
    n_jobs_planned: int
    n_jobs_finished: int
    boot_seed: int = DEFAULT_BOOT_SEED
    verdict: list[str] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)
    config_text: str | None = None
    summary_runs_written: list[dict] = field(default_factory=list)
    # (arch, protocol) -> (finished folds, predictions or None, planned job count); for summary runs
    frames: dict[tuple[str, str], tuple[pd.DataFrame, pd.DataFrame | None, int]] = field(default_factory=dict)

    def as_json(self) -> dict:
        return _jsonable({
            "run_id": self.run_id, "header": self.header,
            "settings": {"confidence": CONFIDENCE, "cv_interval": "Nadeau-Bengio corrected t, df = J-1",
                         "seed_split_accuracy": "Wilson", "seed_split_roc_auc": "percentile bootstrap",
                         "n_boot": N_BOOT, "bootstrap_seed": self.boot_seed},
            "n_jobs_planned": self.n_jobs_planned, "n_jobs_finished": self.n_jobs_finished,
            "groups": self.groups, "comparisons": self.comparisons, "ceiling": self.ceiling,
            "ceiling_gaps": self.ceiling_gaps, "seed_split": self.seed_split, "missing_folds": self.missing_folds,
            "verdict": self.verdict, "summary_runs_written": self.summary_runs_written,
        })


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def _metric_order(names: Iterable[str]) -> list[str]:
    names = list(names)
    head = [m for m in (*METRICS, CEILING) if m in names]
    return head + sorted(m for m in names if m not in head)


def _method(protocol: str, n_folds: int, metric: str) -> str:
    if protocol == "seed_split" and n_folds == 1:
        return {"accuracy": "wilson", "roc_auc": "bootstrap"}.get(metric, "point")
    return "nadeau_bengio_t"


def _group_keys(record: BenchmarkRecord, finished: pd.DataFrame) -> list[tuple[str, str]]:
    planned = record.planned_jobs()
    pairs = set(zip(planned["arch"], planned["protocol"])) | set(zip(finished["arch"], finished["protocol"]))
    archs = _ordered((a for a, _ in pairs), ARCH_ORDER)
    protocols = _ordered((p for _, p in pairs), PROTOCOL_ORDER)
    return [(p, a) for p in protocols for a in archs if (a, p) in pairs]


def build_report(record: BenchmarkRecord) -> Report:
    """Compute every number of the report from the finished fold runs (reads artifacts, writes nothing)."""
    finished = record.finished_folds()
    planned = record.planned_jobs()
    metrics = _metric_order(record.metric_names)
    boot_seed = _boot_seed(record.parent.params)
    groups, frames = [], {}
    for protocol, arch in _group_keys(record, finished):
        g = finished[(finished["arch"] == arch) & (finished["protocol"] == protocol)].reset_index(drop=True)
        preds = None
        if protocol == "seed_split" and len(g) == 1:
            preds = record.artifact_csv(g.loc[0, "run_id"], "predictions.csv")
        n_planned = int(((planned["arch"] == arch) & (planned["protocol"] == protocol)).sum())
        frames[(arch, protocol)] = (g, preds, n_planned)
        ivs = stats.summarize_intervals(g, protocol, metrics, preds, confidence=CONFIDENCE, n_boot=N_BOOT,
                                        seed=boot_seed)
        n_train = float(g["n_train"].mean()) if len(g) else math.nan
        n_test = float(g["n_test"].mean()) if len(g) else math.nan
        for m, iv in ivs.items():
            if m not in METRICS and len(g) and not g[m].notna().any():
                continue  # e.g. partner_in_train exists only for seed_split runs
            groups.append({"arch": arch, "protocol": protocol, "metric": m, "mean": iv.mean, "ci_low": iv.ci_low,
                           "ci_high": iv.ci_high, "n_folds": len(g), "n_planned": n_planned,
                           "method": _method(protocol, len(g), m), "n_train": n_train, "n_test": n_test,
                           "note": iv.note})
    missing = record.missing_jobs()
    report = Report(
        run_id=record.parent.run_id, header=_header(record), groups=groups,
        comparisons=_comparisons(finished), ceiling=_ceiling(finished), ceiling_gaps=_ceiling_gaps(finished),
        seed_split=_seed_split(frames, groups), missing_folds=_records(missing),
        n_jobs_planned=len(planned), n_jobs_finished=len(planned) - len(missing), boot_seed=boot_seed,
        config_text=record.config_text, frames=frames,
    )
    report.verdict = verdict(report, record.parent.params)
    report.figures = _figures(record, finished, report)
    return report


def _boot_seed(params: dict) -> int:
    """The benchmark's run seed, so the report's bootstrap matches the summary runs the runner wrote."""
    try:
        return int(params.get("seed", DEFAULT_BOOT_SEED))
    except (TypeError, ValueError):
        return DEFAULT_BOOT_SEED


def _records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if _isnull(v) else (int(v) if k in ("repeat", "fold") else v)) for k, v in row.items()})
    return out


def _isnull(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _pairs(archs: Sequence[str]) -> list[tuple[str, str]]:
    cnns = [a for a in CNN_ARCHS if a in archs]
    pairs = [tuple(CNN_ARCHS)] if len(cnns) == 2 else []
    return pairs + [(a, "chance") for a in cnns if "chance" in archs]


def _comparisons(finished: pd.DataFrame) -> list[dict]:
    """Paired A − B on folds matched by (protocol, repeat, fold); n_train/n_test = mean over both arms."""
    out = []
    keys = ["protocol", "repeat", "fold"]
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        here = finished[finished["protocol"] == protocol]
        for a, b in _pairs(set(here["arch"])):
            fa, fb = here[here["arch"] == a], here[here["arch"] == b]
            merged = fa.merge(fb, on=keys, suffixes=("_a", "_b"))
            n_train = float(((merged["n_train_a"] + merged["n_train_b"]) / 2).mean()) if len(merged) else math.nan
            n_test = float(((merged["n_test_a"] + merged["n_test_b"]) / 2).mean()) if len(merged) else math.nan
            for m in COMPARED:
                if f"{m}_a" not in merged.columns:
                    continue
                c = stats.corrected_paired_test(merged[f"{m}_a"], merged[f"{m}_b"], n_train, n_test, CONFIDENCE)
                out.append({"a": a, "b": b, "protocol": protocol, "metric": m, "mean_diff": c.mean_diff,
                            "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value, "t": c.t,
                            "n_folds": c.n, "n_train": n_train, "n_test": n_test, "note": c.note})
    return out


def _ceiling(finished: pd.DataFrame) -> list[dict]:
    """Noise ceiling per protocol: per fold the mean `ceiling_accuracy` over the models' runs of that fold."""
    if CEILING not in finished.columns:
        return []
    out = []
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        rows = finished[(finished["protocol"] == protocol) & finished[CEILING].notna()]
        if rows.empty:
            continue
        per_fold = rows.groupby(["repeat", "fold"]).agg(c=(CEILING, "mean"), n_train=("n_train", "mean"),
                                                        n_test=("n_test", "mean"))
        n_train, n_test = float(per_fold["n_train"].mean()), float(per_fold["n_test"].mean())
        iv = stats.corrected_interval(per_fold["c"], n_train, n_test, CONFIDENCE)
        note = iv.note
        if protocol == "seed_split" and len(per_fold) == 1:
            note = "single split: expected Bayes accuracy on this test set (no interval)"
        out.append({"protocol": protocol, "mean": iv.mean, "ci_low": iv.ci_low, "ci_high": iv.ci_high,
                    "n_folds": len(per_fold), "n_train": n_train, "n_test": n_test, "note": note})
    return out


def _ceiling_gaps(finished: pd.DataFrame) -> list[dict]:
    """Per model: ceiling − accuracy on its own fold runs (paired, corrected)."""
    if CEILING not in finished.columns:
        return []
    out = []
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        for arch in _ordered(finished.loc[finished["protocol"] == protocol, "arch"], ARCH_ORDER):
            g = finished[(finished["protocol"] == protocol) & (finished["arch"] == arch)]
            if g[CEILING].notna().sum() == 0:
                continue
            c = stats.corrected_paired_test(g[CEILING], g["accuracy"], float(g["n_train"].mean()),
                                            float(g["n_test"].mean()), CONFIDENCE)
            out.append({"arch": arch, "protocol": protocol, "mean_gap": c.mean_diff, "ci_low": c.ci_low,
                        "ci_high": c.ci_high, "p_value": c.p_value, "n_folds": c.n, "note": c.note})
    return out


def _seed_split(frames: dict, groups: list[dict]) -> list[dict]:
    """The single 60/20 split as the original study reported it, plus intervals and partner leakage."""
    out = []
    for (arch, protocol), (g, preds, _) in frames.items():
        if protocol != "seed_split" or len(g) != 1:
            continue
        row = g.iloc[0]
        entry = {"arch": arch, "run_id": row["run_id"], "n_train": row["n_train"], "n_test": row["n_test"],
                 "n_test_images": row.get("n_test_images", math.nan),
                 "partner_in_train": row.get("partner_in_train", math.nan),
                 "ceiling_accuracy": row.get(CEILING, math.nan), "has_predictions": preds is not None}
        entry.update({m: row.get(m, math.nan) for m in METRICS})
        for gr in groups:
            if gr["arch"] == arch and gr["protocol"] == protocol and gr["metric"] in ("accuracy", "roc_auc"):
                key = "accuracy_wilson" if gr["metric"] == "accuracy" else "roc_auc_bootstrap"
                entry[key] = [gr["ci_low"], gr["ci_high"]]
                entry[f"{key}_note"] = gr["note"]
        out.append(entry)
    return out


def _header(record: BenchmarkRecord) -> dict:
    p = record.parent
    tags = p.tags
    weights = p.weights
    random = {a: w for a, w in weights.items() if "none" in w.lower() or "random" in w.lower()}
    return {
        "run_id": p.run_id, "run_name": p.run_name, "status": p.status, "experiment": p.experiment_name,
        "experiment_id": p.experiment_id, "start_time": _iso(p.start_time), "end_time": _iso(p.end_time),
        "dataset": record.dataset, "dataset_name": tags.get("neipalette.dataset_name"),
        "dataset_hash": tags.get("neipalette.dataset_hash"), "git_commit": tags.get("neipalette.git_commit"),
        "config_hash": tags.get("neipalette.config_hash"), "group": tags.get("neipalette.group"),
        "weights": weights, "random_init": sorted(random), "params": dict(sorted(p.params.items())),
        "tracking_uri": _redact(record.tracking_uri),
    }


def _iso(ms: int | None) -> str | None:
    return None if not ms else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _redact(uri: str) -> str:
    # postgresql://user:password@host/db -> postgresql://***@host/db
    if "://" in uri and "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri


# -- verdict --------------------------------------------------------------------------------------------
def _find(items: list[dict], **kw) -> dict | None:
    return next((i for i in items if all(i.get(k) == v for k, v in kw.items())), None)


def _finite(*xs) -> bool:
    return all(x is not None and isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def _cv_label(params: dict) -> str:
    k, r = params.get("n_splits"), params.get("n_repeats")
    return f"{r}×{k}-fold CV" if k and r else "CV"


def verdict(report: Report, params: dict) -> list[str]:
    """A few plain sentences generated from the numbers (CV first; the single split where it is all there is)."""
    out = []
    if report.n_jobs_finished < report.n_jobs_planned:
        out.append(f"Incomplete benchmark: {report.n_jobs_planned - report.n_jobs_finished} of "
                   f"{report.n_jobs_planned} planned fold jobs have no finished run; the numbers use the finished "
                   "folds only.")
    protocols = {c["protocol"] for c in report.comparisons if c["n_folds"] >= 2}
    protocol = "cv" if "cv" in protocols else next(iter(sorted(protocols)), None)
    label = _cv_label(params) if protocol == "cv" else PROTOCOL_LABELS.get(protocol, protocol)
    if protocol is None:
        out.append("No paired comparison has 2 or more finished folds, so no model can be compared at 95%.")
    archs = {g["arch"] for g in report.groups}
    for arch in (a for a in CNN_ARCHS if a in archs):
        out.append(_vs_chance(report, arch, protocol, label) if "chance" in archs and protocol else
                   f"{ARCH_LABELS[arch]}: no chance baseline on the same folds, so beating chance cannot be judged.")
    if all(a in archs for a in CNN_ARCHS) and protocol:
        out.append(_vs_arch(report, protocol, label))
    out.extend(_vs_ceiling(report))
    out.extend(_widths(report, params))
    return [s for s in out if s]


def _word(m: str) -> str:
    return {"accuracy": "accuracy", "roc_auc": "ROC-AUC"}.get(m, m)


def _diff(c: dict) -> str:
    return (f"{_word(c['metric'])} {c['mean_diff']:+.3f} "
            f"[{_f(c['ci_low'])}, {_f(c['ci_high'])}], p = {_p(c['p_value'])}")


def _vs_chance(report: Report, arch: str, protocol: str, label: str) -> str:
    cs = [c for c in report.comparisons if c["a"] == arch and c["b"] == "chance" and c["protocol"] == protocol]
    cs = [c for c in cs if _finite(c["ci_low"], c["ci_high"])]
    if not cs:
        return f"{ARCH_LABELS[arch]} vs chance: not enough paired folds for an interval ({label})."
    above = [_word(c["metric"]) for c in cs if c["ci_low"] > 0]
    below = [_word(c["metric"]) for c in cs if c["ci_high"] < 0]
    details = "; ".join(_diff(c) for c in cs)
    if above:
        head = f"{ARCH_LABELS[arch]} beats chance at 95% on {' and '.join(above)}"
    elif below:
        head = f"{ARCH_LABELS[arch]} is worse than chance at 95% on {' and '.join(below)}"
    else:
        head = f"{ARCH_LABELS[arch]} does not beat chance at 95%: every interval of the difference includes 0"
    return f"{head} ({label}; {ARCH_LABELS[arch]} − chance: {details})."


def _vs_arch(report: Report, protocol: str, label: str) -> str:
    a, b = CNN_ARCHS
    cs = [c for c in report.comparisons if c["a"] == a and c["b"] == b and c["protocol"] == protocol
          and _finite(c["ci_low"], c["ci_high"])]
    if not cs:
        return f"{ARCH_LABELS[a]} and {ARCH_LABELS[b]}: not enough paired folds to compare ({label})."
    apart = [_word(c["metric"]) for c in cs if c["ci_low"] > 0 or c["ci_high"] < 0]
    details = "; ".join(_diff(c) for c in cs)
    head = (f"The two architectures can be told apart at 95% on {' and '.join(apart)}" if apart else
            "The two architectures cannot be told apart at 95%: the intervals of the difference include 0")
    return f"{head} ({label}; {ARCH_LABELS[a]} − {ARCH_LABELS[b]}: {details})."


def _vs_ceiling(report: Report) -> list[str]:
    ceil = _find(report.ceiling, protocol="cv")
    if ceil is None or not _finite(ceil["mean"]):
        return []
    accs = [g for g in report.groups if g["protocol"] == "cv" and g["metric"] == "accuracy" and _finite(g["mean"])]
    if not accs:
        return []
    best = max(accs, key=lambda g: g["mean"])
    gap = _find(report.ceiling_gaps, arch=best["arch"], protocol="cv")
    diff = gap["mean_gap"] if gap and _finite(gap["mean_gap"]) else ceil["mean"] - best["mean"]
    where = "below" if diff >= 0 else "above"
    text = (f"The best model by CV accuracy, {_arch(best['arch'])} ({best['mean']:.3f}), is {abs(diff):.3f} {where} "
            f"the noise ceiling (Bayes accuracy {_ci(ceil['mean'], ceil['ci_low'], ceil['ci_high'])})")
    if gap and _finite(gap["ci_low"], gap["ci_high"]):
        text += f"; ceiling − accuracy {diff:+.3f} [{gap['ci_low']:.3f}, {gap['ci_high']:.3f}] on the same folds"
    return [text + "."]


def _widths(report: Report, params: dict) -> list[str]:
    out = []
    for s in (s for s in report.seed_split if s["arch"] in CNN_ARCHS):
        w = s.get("accuracy_wilson") or [math.nan, math.nan]
        cv = _find(report.groups, arch=s["arch"], protocol="cv", metric="accuracy")
        if not _finite(*w):
            continue
        leak = ""
        if _finite(s.get("partner_in_train")):
            leak = f"; {int(s['partner_in_train'])} test images have their outfit partner in train"
        text = (f"{_arch(s['arch'])} on the single 60/20 split: accuracy {s['accuracy']:.3f} with a 95% interval "
                f"{w[1] - w[0]:.3f} wide (Wilson, {int(s['n_test'])} test samples{leak})")
        if cv and _finite(cv["ci_low"], cv["ci_high"]):
            text += (f"; {_cv_label(params)} gives {_ci(cv['mean'], cv['ci_low'], cv['ci_high'])}, "
                     f"{cv['ci_high'] - cv['ci_low']:.3f} wide")
        out.append(text + ".")
    return out


# -- figures --------------------------------------------------------------------------------------------
def _figures(record: BenchmarkRecord, finished: pd.DataFrame, report: Report) -> dict[str, bytes]:
    out = {}
    cv = finished[finished["protocol"] == "cv"]
    order = _ordered(cv["arch"], ARCH_ORDER)
    curves = {}
    for arch in order:
        cs = [record.artifact_csv(rid, "roc.csv") for rid in cv.loc[cv["arch"] == arch, "run_id"]]
        cs = [c for c in cs if c is not None]
        if cs:
            curves[arch] = cs
    if curves:
        out["roc"] = figures.roc_figure(curves, labels=ARCH_LABELS, banded=CNN_ARCHS,
                                        title="Mean ROC over CV folds (band: ±1 sd)")
    rows = [{"label": f"{_arch(g['arch'])} · {PROTOCOL_LABELS.get(g['protocol'], g['protocol'])}",
             "metric": g["metric"], "mean": _num(g["mean"]), "ci_low": _num(g["ci_low"]),
             "ci_high": _num(g["ci_high"])} for g in report.groups if g["metric"] in COMPARED]
    if rows:
        ceil = _find(report.ceiling, protocol="cv")
        out["forest"] = figures.forest_figure(rows, ceiling=ceil["mean"] if ceil else None)
    if not cv.empty:
        out["folds"] = figures.fold_scores_figure(cv, order=order, labels=ARCH_LABELS)
    return out


FIGURE_CAPTIONS = {
    "roc": "Mean ROC curve per model over the CV folds (each fold's curve interpolated on a common FPR grid); "
           "band = ±1 sd for the CNNs.",
    "forest": "Accuracy and ROC-AUC with 95% intervals per model and protocol; dotted line 0.5, dashed line the "
              "CV noise ceiling.",
    "folds": "Per-fold CV scores per model; the bar is the mean.",
}


# -- rendering ------------------------------------------------------------------------------------------
def _num(x) -> float:
    return float(x) if _finite(x) else math.nan


def _f(x, d: int = 3) -> str:
    return f"{x:.{d}f}" if _finite(x) else "n/a"


def _p(p) -> str:
    if not _finite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _ci(mean, lo, hi) -> str:
    if not _finite(mean):
        return "n/a"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if _finite(lo, hi) else f"{mean:.3f} [n/a]"


def _arch(a: str) -> str:
    return ARCH_LABELS.get(a, a)


def _metric_label(m: str) -> str:
    return dict(TABLE2).get(m, m)


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _cell(report: Report, arch: str, protocol: str, metric: str, notes: list[str]) -> str:
    g = _find(report.groups, arch=arch, protocol=protocol, metric=metric)
    if g is None:
        return "—"
    if g["note"] and g["note"] != _POINT_NOTE:
        note = f"{_arch(arch)} ({protocol}) {metric}: {g['note']}"
        if note not in notes:
            notes.append(note)
    return _ci(g["mean"], g["ci_low"], g["ci_high"])


def _group_list(report: Report) -> list[tuple[str, str, int]]:
    seen = {}
    for g in report.groups:
        seen.setdefault((g["protocol"], g["arch"]), g["n_folds"])
    return [(p, a, n) for (p, a), n in seen.items()]


def _table2(report: Report) -> _Table:
    notes: list[str] = []
    rows = []
    groups = _group_list(report)
    for protocol in dict.fromkeys(p for p, _, _ in groups):
        for _, arch, n in (g for g in groups if g[0] == protocol):
            rows.append([_arch(arch), protocol, str(n), *(_cell(report, arch, protocol, m, notes) for m, _ in TABLE2)])
        ceil = _find(report.ceiling, protocol=protocol)
        if ceil:
            rows.append(["Noise ceiling (Bayes)", protocol, str(ceil["n_folds"]),
                         _ci(ceil["mean"], ceil["ci_low"], ceil["ci_high"]), "—", "—", "—", "—"])
            if ceil["note"]:
                notes.append(f"Noise ceiling ({protocol}): {ceil['note']}")
    if any(p == "seed_split" for p, _, _ in groups):
        notes.insert(0, f"seed_split: one 60/20 split; accuracy has a Wilson interval over test samples, ROC-AUC a "
                        f"percentile bootstrap ({N_BOOT} resamples, seed {report.boot_seed}); other metrics are point "
                        "estimates [n/a].")
    return _Table(["Model", "Protocol", "Folds", *(lab for _, lab in TABLE2)], rows, notes)


def _table3(report: Report) -> _Table:
    notes: list[str] = []
    rows = []
    for cls, ms in CLASS_METRICS.items():
        for protocol, arch, _ in _group_list(report):
            rows.append([cls, _arch(arch), protocol, *(_cell(report, arch, protocol, m, notes) for m in ms)])
    return _Table(["Class", "Model", "Protocol", "Precision", "Recall", "F1"], rows, notes)


def _comparison_table(report: Report) -> _Table:
    rows, notes = [], []
    single = [c for c in report.comparisons if c["protocol"] == "seed_split" and c["n_folds"] < 2]
    if single:
        notes.append("The 60/20 split is a single fold, so its paired differences have no interval and are left out "
                     "here (they are in report.json).")
    for c in report.comparisons:
        if c in single:
            continue
        rows.append([f"{_arch(c['a'])} − {_arch(c['b'])}", c["protocol"], _metric_label(c["metric"]),
                     str(c["n_folds"]), f"{c['mean_diff']:+.3f}" if _finite(c["mean_diff"]) else "n/a",
                     f"[{_f(c['ci_low'])}, {_f(c['ci_high'])}]", _p(c["p_value"])])
        if c["note"]:
            note = f"{_arch(c['a'])} − {_arch(c['b'])} ({c['protocol']}, {c['metric']}): {c['note']}"
            if note not in notes:
                notes.append(note)
    return _Table(["Comparison", "Protocol", "Metric", "Folds", "Mean diff", "95% CI", "p (two-sided)"], rows, notes)


def _gap_table(report: Report) -> _Table:
    rows = [[_arch(g["arch"]), g["protocol"], str(g["n_folds"]), f"{g['mean_gap']:+.3f}" if _finite(g["mean_gap"])
             else "n/a", f"[{_f(g['ci_low'])}, {_f(g['ci_high'])}]", _p(g["p_value"])]
            for g in report.ceiling_gaps if g["n_folds"] >= 2 or g["protocol"] != "seed_split"]
    return _Table(["Model", "Protocol", "Folds", "Ceiling − accuracy", "95% CI", "p"], rows,
                  ["Paired on each fold run's own test set: its ceiling_accuracy minus its accuracy."])


def _seed_table(report: Report) -> _Table:
    rows = []
    for s in report.seed_split:
        w = s.get("accuracy_wilson") or [math.nan, math.nan]
        b = s.get("roc_auc_bootstrap") or [math.nan, math.nan]
        rows.append([_arch(s["arch"]), _f(s["n_train"], 0), _f(s["n_test"], 0),
                     _f(s["partner_in_train"], 0), _f(s["accuracy"]), f"[{_f(w[0])}, {_f(w[1])}]",
                     _f(s["precision"]), _f(s["recall"]), _f(s["f1"]), _f(s["roc_auc"]),
                     f"[{_f(b[0])}, {_f(b[1])}]"])
    notes = [f"{_arch(s['arch'])}: {s[k]}" for s in report.seed_split
             for k in ("accuracy_wilson_note", "roc_auc_bootstrap_note") if s.get(k)]
    return _Table(["Model", "Train", "Test", "Partner in train", "Accuracy", "Wilson 95%", "Precision", "Recall",
                   "F1", "ROC-AUC", "Bootstrap 95%"], rows, notes)


def _missing_table(report: Report) -> _Table:
    rows = [[_arch(m["arch"]), m["protocol"], str(m["repeat"]), str(m["fold"]), m.get("status") or "",
             m.get("error") or ""] for m in report.missing_folds]
    return _Table(["Model", "Protocol", "Repeat", "Fold", "Last status", "Error"], rows)


def _header_lines(report: Report) -> tuple[list[str], list[str]]:
    h = report.header
    lines, warnings = [], []
    lines.append(f"Benchmark: `{h['run_name']}` (parent run `{h['run_id']}`, status {h['status']}, experiment "
                 f"`{h['experiment']}`, started {h['start_time'] or 'n/a'})")
    d = h.get("dataset") or {}
    name = d.get("name") or h.get("dataset_name") or "unknown"
    if d:
        pos, neg = d.get("n_positive"), d.get("n_negative")
        bal = ""
        if _finite(pos, neg) and pos + neg > 0:
            bal = f", {pos} positive / {neg} negative ({100 * pos / (pos + neg):.0f}% positive)"
        truth = "with truth.csv (noise ceiling known)" if d.get("has_truth") else "no truth.csv"
        lines.append(f"Dataset: `{name}` — {d.get('n_outfits', '?')} outfits{bal}; content hash "
                     f"`{d.get('hash') or h.get('dataset_hash')}`; {truth}")
    else:
        lines.append(f"Dataset: `{name}` (no dataset.json on the parent run); hash `{h.get('dataset_hash')}`")
    if h["weights"]:
        lines.append("Weights used: " + "; ".join(f"{_arch(a)}: `{w}`" for a, w in h["weights"].items()))
    else:
        lines.append("Weights used: not recorded")
    lines.append(f"Git commit: `{h.get('git_commit') or 'unknown'}`; config hash `{h.get('config_hash') or 'n/a'}`")
    lines.append(f"Fold jobs: {report.n_jobs_finished} of {report.n_jobs_planned} planned finished")
    if h["random_init"]:
        warnings.append("WARNING: random-init weights were used for " +
                        ", ".join(f"{_arch(a)} (`{h['weights'][a]}`)" for a in h["random_init"]) +
                        " — these are not ImageNet transfer-learning results.")
    return lines, warnings


def _blocks(report: Report) -> list[tuple]:
    """The report as a list of blocks that both renderers understand."""
    lines, warnings = _header_lines(report)
    b: list[tuple] = [("h", 1, "NeiPalette benchmark report")]
    b += [("warn", w) for w in warnings]
    b.append(("list", lines))
    b += [("h", 2, "Verdict"), ("list", report.verdict or ["No finished folds to judge."])]
    if report.missing_folds:
        b += [("h", 2, "Missing folds"),
              ("p", f"{len(report.missing_folds)} of {report.n_jobs_planned} planned fold jobs have no FINISHED run "
                    "(parent jobs.json vs fold runs):"),
              ("table", _missing_table(report))]
    b += [("h", 2, "Table 2 — overall performance (mean [95% CI])"), ("table", _table2(report)),
          ("p", "CV intervals: Nadeau & Bengio corrected resampled t, "
                "mean ± t(J−1, 0.975)·sqrt((1/J + n_test/n_train)·var), J = finished folds; intervals are not "
                "clipped to [0, 1], so a bound past 1 or below 0 just says how wide the uncertainty is."),
          ("h", 2, "Table 3 — per-class performance (mean [95% CI])"), ("table", _table3(report)),
          ("h", 2, "Paired comparisons (same folds)"), ("table", _comparison_table(report))]
    if report.ceiling_gaps:
        b += [("h", 2, "Distance to the noise ceiling"), ("table", _gap_table(report))]
    if report.seed_split:
        b += [("h", 2, "The original 60/20 split (single-image input)"),
              ("p", "Point estimates as the original study reported them, with the intervals it did not report."),
              ("table", _seed_table(report))]
    if report.summary_runs_written:
        b += [("h", 2, "Summary runs written by this report"),
              ("list", [f"{_arch(s['arch'])} / {s['protocol']}: `{s['run_id']}`" for s in report.summary_runs_written])]
    if report.figures:
        b.append(("h", 2, "Figures"))
        b += [("fig", name, FIGURE_CAPTIONS.get(name, name)) for name in report.figures]
    if report.config_text:
        b += [("h", 2, "Appendix — resolved config (config.yaml)"), ("code", report.config_text)]
    return b


def _md_cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report) -> str:
    """Markdown; figures are referenced as `<name>.png` next to report.md."""
    out = []
    for blk in _blocks(report):
        kind = blk[0]
        if kind == "h":
            out.append(f"{'#' * blk[1]} {blk[2]}\n")
        elif kind == "warn":
            out.append(f"> **{blk[1]}**\n")
        elif kind == "p":
            out.append(f"{blk[1]}\n")
        elif kind == "list":
            out.append("\n".join(f"- {x}" for x in blk[1]) + "\n")
        elif kind == "table":
            t = blk[1]
            rows = [t.headers, ["---"] * len(t.headers), *t.rows]
            out.append("\n".join("| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows) + "\n")
            if t.notes:
                out.append("\n".join(f"- _{_md_cell(n)}_" for n in t.notes) + "\n")
        elif kind == "fig":
            out.append(f"![{blk[2]}]({blk[1]}.png)\n\n_{blk[2]}_\n")
        elif kind == "code":
            out.append(f"```yaml\n{blk[1].rstrip()}\n```\n")
    return "\n".join(out)


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}th,td{border:1px solid #ccc;
padding:.25em .6em;text-align:left}th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}
.warn{background:#fff3cd;border:1px solid #e0b400;padding:.6em;font-weight:600}.note{color:#555;font-size:.85em;
margin:0}code,pre{background:#f6f6f6}pre{padding:.8em;overflow:auto}img{max-width:100%}figcaption{color:#555;
font-size:.9em}"""


def render_html(report: Report) -> str:
    """Self-contained HTML: inline CSS, figures as base64 PNG data URIs; no external resources."""
    esc = html.escape

    def inline(s: str) -> str:  # `code` spans, as in the markdown
        parts = esc(str(s)).split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>NeiPalette report {esc(report.run_id)}</title><style>{_CSS}</style></head><body>"]
    for blk in _blocks(report):
        kind = blk[0]
        if kind == "h":
            out.append(f"<h{blk[1]}>{esc(blk[2])}</h{blk[1]}>")
        elif kind == "warn":
            out.append(f'<p class="warn">{inline(blk[1])}</p>')
        elif kind == "p":
            out.append(f"<p>{inline(blk[1])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{inline(x)}</li>" for x in blk[1]) + "</ul>")
        elif kind == "table":
            t = blk[1]
            head = "".join(f"<th>{esc(h)}</th>" for h in t.headers)
            body = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in t.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            out += [f'<p class="note">{esc(n)}</p>' for n in t.notes]
        elif kind == "fig":
            data = base64.b64encode(report.figures[blk[1]]).decode("ascii")
            out.append(f'<figure><img alt="{esc(blk[2])}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{esc(blk[2])}</figcaption></figure>")
        elif kind == "code":
            out.append(f"<details><summary>config.yaml</summary><pre>{esc(blk[1])}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


def render_json(report: Report) -> str:
    return json.dumps(report.as_json(), indent=2, allow_nan=False)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or x is pd.NA:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


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
                                        float(g["n_test"].mean()))
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


@click.command()
@click.option("--run-id", default=None,
              help="Parent run to report (any status). Default (or 'latest'): latest FINISHED parent.")
@click.option("--experiment", default="neipalette", show_default=True, help="MLflow experiment to search.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder.  [default: reports/<run-id>/]")
@click.option("--format", "fmt", type=click.Choice(["md", "json", "html"]), default=None,
              help="Also print this format to stdout.")
@click.option("--no-log", is_flag=True, help="Write nothing to MLflow (no summary runs, no report artifacts).")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(run_id: str | None, experiment: str, out_dir: Path | None, fmt: str | None, no_log: bool,
         verbose: bool) -> None:
    """Report a NeiPalette benchmark from MLflow (tracking URI: MLFLOW_TRACKING_URI, else MLflow's default)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if run_id in ("", "latest"):
        run_id = None
    try:
        _, paths = generate(run_id, experiment, out_dir, log=not no_log)
    except TrackingError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    if fmt:
        click.echo(paths[fmt].read_text(encoding="utf-8"))
    click.echo(f"report written to {paths['md'].parent}", err=True)


if __name__ == "__main__":
    main()
