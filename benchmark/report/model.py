"""What the benchmark report says: its numbers, verdict sentences and figures, computed from one benchmark.

`build_report(record)` turns a `benchmark.tracking.read.BenchmarkRecord` into a `Report` (plain data; reads
artifacts, writes nothing). Rendering it as text is `benchmark.report.render`; files and the CLI are
`benchmark.report`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from benchmark import stats
from benchmark.report import figures
from benchmark.report.tuning import tuning_figure, tuning_section
from benchmark.tracking.read import BenchmarkRecord
from neipalette.metrics import METRICS

CONFIDENCE = 0.95
N_BOOT = 2000
DEFAULT_BOOT_SEED = 0  # used when the parent has no `seed` param
CNN_ARCHS = ("resnet18", "efficientnet_b0")  # the original study's pair, compared with each other
BASELINE_ARCHS = ("chance", "colour_stats", "ou_luo")
ARCH_ORDER = ("resnet18", "efficientnet_b0", "efficientnet_lite0", "chance", "colour_stats", "ou_luo")
ARCH_LABELS = {
    "resnet18": "ResNet18", "efficientnet_b0": "EfficientNet-B0", "efficientnet_lite0": "EfficientNet-Lite0",
    "chance": "Chance (stratified)",
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
    tuning: dict | None = None  # benchmark.report.tuning.tuning_section: chosen values per fold, edge flags

    def as_json(self) -> dict:
        return _jsonable({
            "run_id": self.run_id, "header": self.header,
            "settings": {"confidence": CONFIDENCE, "cv_interval": "Nadeau-Bengio corrected t, df = J-1",
                         "seed_split_accuracy": "Wilson", "seed_split_roc_auc": "percentile bootstrap",
                         "n_boot": N_BOOT, "bootstrap_seed": self.boot_seed},
            "n_jobs_planned": self.n_jobs_planned, "n_jobs_finished": self.n_jobs_finished,
            "groups": self.groups, "comparisons": self.comparisons, "ceiling": self.ceiling,
            "ceiling_gaps": self.ceiling_gaps, "seed_split": self.seed_split, "missing_folds": self.missing_folds,
            "verdict": self.verdict, "summary_runs_written": self.summary_runs_written, "tuning": self.tuning,
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
    report.tuning = tuning_section(finished, record.parent.params, CNN_ARCHS)
    if report.tuning:
        report.figures["tuning"] = tuning_figure(report.tuning, ARCH_LABELS)
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


def _cnns(archs) -> list[str]:
    """Every network in `archs` (not a baseline), in report order."""
    return [a for a in _ordered(archs, ARCH_ORDER) if a not in BASELINE_ARCHS]


def _pairs(archs: Sequence[str]) -> list[tuple[str, str]]:
    cnns = _cnns(archs)
    pairs = [tuple(CNN_ARCHS)] if all(a in archs for a in CNN_ARCHS) else []
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
    for arch in _cnns(archs):
        out.append(_vs_chance(report, arch, protocol, label) if "chance" in archs and protocol else
                   f"{_arch(arch)}: no chance baseline on the same folds, so beating chance cannot be judged.")
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
        return f"{_arch(arch)} vs chance: not enough paired folds for an interval ({label})."
    above = [_word(c["metric"]) for c in cs if c["ci_low"] > 0]
    below = [_word(c["metric"]) for c in cs if c["ci_high"] < 0]
    details = "; ".join(_diff(c) for c in cs)
    if above:
        head = f"{_arch(arch)} beats chance at 95% on {' and '.join(above)}"
    elif below:
        head = f"{_arch(arch)} is worse than chance at 95% on {' and '.join(below)}"
    else:
        head = f"{_arch(arch)} does not beat chance at 95%: every interval of the difference includes 0"
    return f"{head} ({label}; {_arch(arch)} − chance: {details})."


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
    for s in (s for s in report.seed_split if s["arch"] not in BASELINE_ARCHS):
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
        out["roc"] = figures.roc_figure(curves, labels=ARCH_LABELS, banded=_cnns(curves),
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
    "tuning": "Learning rate and epochs chosen by nested tuning in each outer fold (circles: CV, squares: 60/20 "
              "split); dashed box: the search range; red rings: choices at its edge.",
}


# -- number formatting (the verdict's and figures'; reused by benchmark.report.render) ------------------
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
