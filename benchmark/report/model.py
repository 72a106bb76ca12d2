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
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import stats
from benchmark.report import figures
from benchmark.report.tuning import tuning_figure, tuning_section
from benchmark.tracking.read import BenchmarkRecord
from neipalette.evaluation.metrics import METRICS

CONFIDENCE = 0.95
N_BOOT = 2000
DEFAULT_BOOT_SEED = 0  # used when the parent has no `seed` param
CNN_ARCHS = ("resnet18", "efficientnet_b0")  # the original study's pair, compared with each other
BASELINE_ARCHS = ("chance", "colour_stats", "ou_luo")
COLOUR_BASELINES = ("colour_stats", "ou_luo")
BASELINES = BASELINE_ARCHS
ALPHA = 0.05
COVERAGE_GOAL = 0.93
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
CHANCE_LEVEL = "chance_level"  # the b side of a test against the known chance level
INTERVAL_METHOD = "bounded_logit_t"  # benchmark.stats.bounded_interval; its label in coverage runs
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
    primary_metric: str = "roc_auc"
    family: dict = field(default_factory=dict)
    coverage: dict | None = None
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
            "settings": {"confidence": CONFIDENCE,
                         "cv_interval": "Nadeau-Bengio corrected t on the logit scale (bounded_logit_t), df = J-1; "
                                        "metrics outside [0, 1]: corrected t",
                         "comparisons": "corrected paired t on the difference scale; tests against the chance level "
                                        "are one-sample corrected t",
                         "multiplicity": f"Holm over the declared family on the primary metric, alpha {ALPHA}",
                         "seed_split_accuracy": "outfit-level (cluster) percentile bootstrap; Wilson as if images "
                                                "were independent",
                         "seed_split_roc_auc": "outfit-level (cluster) percentile bootstrap",
                         "ceiling": "expected Bayes accuracy; realised Bayes-rule accuracy range from the exact "
                                    "Poisson-binomial law",
                         "n_boot": N_BOOT, "bootstrap_seed": self.boot_seed},
            "primary_metric": self.primary_metric, "family": self.family, "coverage": self.coverage,
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


def _method(protocol: str, n_folds: int, metric: str, preds: pd.DataFrame | None = None) -> str:
    if protocol == "seed_split" and n_folds == 1:
        if metric in COMPARED and preds is not None and "outfit_id" in preds.columns:
            return "cluster_bootstrap"
        return {"accuracy": "wilson", "roc_auc": "bootstrap"}.get(metric, "point")
    return INTERVAL_METHOD if metric in stats.UNIT_METRICS else "nadeau_bengio_t"


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
                           "method": _method(protocol, len(g), m, preds), "n_train": n_train, "n_test": n_test,
                           "note": iv.note})
    missing = record.missing_jobs()
    primary = _primary_metric(record.parent.params)
    truth = _truth(record)
    comparisons, family = _comparisons(finished, groups, primary, _chance_accuracy(record.dataset))
    ceiling = _ceiling(finished, truth)
    report = Report(
        run_id=record.parent.run_id, header=_header(record), groups=groups,
        comparisons=comparisons, ceiling=ceiling, ceiling_gaps=_ceiling_gaps(groups, ceiling),
        seed_split=_seed_split(frames, groups), missing_folds=_records(missing),
        n_jobs_planned=len(planned), n_jobs_finished=len(planned) - len(missing), boot_seed=boot_seed,
        config_text=record.config_text, frames=frames, primary_metric=primary, family=family,
        coverage=_coverage(record),
    )
    report.verdict = verdict(report, record.parent.params)
    report.figures = _figures(record, finished, report)
    report.tuning = tuning_section(finished, record.parent.params, CNN_ARCHS)
    if report.tuning:
        report.figures["tuning"] = tuning_figure(report.tuning, ARCH_LABELS)
    return report


def _primary_metric(params: dict) -> str:
    m = params.get("primary_metric", "roc_auc")
    return m if m in COMPARED else "roc_auc"


def _truth(record: BenchmarkRecord) -> dict | None:
    """Per-outfit P(positive) and labels: recorded in dataset.json (new runs), else the dataset's truth.csv."""
    d = record.dataset or {}
    if d.get("p_positive") is not None:
        return {"p_positive": d["p_positive"], "labels": d.get("labels"), "source": "dataset.json"}
    root = d.get("root")
    if not root:
        return None
    try:
        truth = pd.read_csv(Path(root) / "truth.csv", dtype={"outfit_id": str})
        outfits = pd.read_csv(Path(root) / "outfits.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError):
        return None
    if len(outfits) != d.get("n_outfits"):
        return None  # not the dataset this benchmark ran on
    merged = outfits.merge(truth[["outfit_id", "p_positive"]], on="outfit_id", how="left")
    if merged["p_positive"].isna().any():
        return None
    labels = merged["label"].str.strip().str.lower().map({"positive": 1, "negative": 0, "1": 1, "0": 0})
    return {"p_positive": merged["p_positive"].astype(float).tolist(),
            "labels": None if labels.isna().any() else labels.astype(int).tolist(), "source": "truth.csv"}


def _chance_accuracy(dataset: dict | None) -> tuple[float, str]:
    """Accuracy of the stratified guess with the dataset's class balance π (stratified folds keep it): π² + (1−π)²."""
    d = dataset or {}
    pos, neg = d.get("n_positive"), d.get("n_negative")
    if _finite(pos, neg) and pos + neg > 0:
        pi = pos / (pos + neg)
        return stats.stratified_chance_accuracy(pi), f"stratified guess at {100 * pi:.0f}% positive"
    return 0.5, "class balance not recorded; 0.5 assumed"


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


def _best_colour_baseline(groups: list[dict], protocol: str, metric: str) -> str | None:
    """The colour baseline with the higher mean `metric` on this protocol (declared in the family up front)."""
    cands = [g for g in groups if g["protocol"] == protocol and g["metric"] == metric
             and g["arch"] in COLOUR_BASELINES and _finite(g["mean"])]
    return max(cands, key=lambda g: g["mean"])["arch"] if cands else None


def _comparisons(finished: pd.DataFrame, groups: list[dict], primary: str,
                 chance_acc: tuple[float, str]) -> tuple[list[dict], dict]:
    """The declared family per protocol: each CNN vs the chance level, CNN vs CNN, each CNN vs the best colour
    baseline; both compared metrics, Holm-adjusted p on the primary metric of the CV family only."""
    out = []
    keys = ["protocol", "repeat", "fold"]
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        here = finished[finished["protocol"] == protocol]
        present = set(here["arch"])
        cnns = _cnns(present)
        for a in cnns:
            fa = here[here["arch"] == a]
            n_train, n_test = float(fa["n_train"].mean()), float(fa["n_test"].mean())
            for m in COMPARED:
                if m not in fa.columns:
                    continue
                level, how = (0.5, "ROC-AUC of any label-blind score") if m == "roc_auc" else chance_acc
                c = stats.test_against_level(fa[m].to_numpy(dtype=float), level, n_train, n_test, CONFIDENCE)
                out.append(_comparison(a, CHANCE_LEVEL, protocol, m, c, n_train, n_test, kind="level",
                                       level=level, level_note=how))
        best = _best_colour_baseline(groups, protocol, primary)
        pairs = [(a, b) for i, a in enumerate(cnns) for b in cnns[i + 1:]]
        pairs += [(a, best) for a in cnns if best is not None]
        for a, b in pairs:
            fa, fb = here[here["arch"] == a], here[here["arch"] == b]
            merged = fa.merge(fb, on=keys, suffixes=("_a", "_b"))
            n_train = float(((merged["n_train_a"] + merged["n_train_b"]) / 2).mean()) if len(merged) else math.nan
            n_test = float(((merged["n_test_a"] + merged["n_test_b"]) / 2).mean()) if len(merged) else math.nan
            for m in COMPARED:
                if f"{m}_a" not in merged.columns:
                    continue
                c = stats.corrected_paired_test(merged[f"{m}_a"], merged[f"{m}_b"], n_train, n_test, CONFIDENCE)
                out.append(_comparison(a, b, protocol, m, c, n_train, n_test,
                                       kind="baseline" if b in COLOUR_BASELINES else "pair"))
    family = _adjust(out, primary)
    return out, family


def _comparison(a: str, b: str, protocol: str, m: str, c: stats.Comparison, n_train: float, n_test: float, *,
                kind: str, level: float | None = None, level_note: str = "") -> dict:
    return {"a": a, "b": b, "kind": kind, "protocol": protocol, "metric": m, "level": level,
            "level_note": level_note, "mean_diff": c.mean_diff, "ci_low": c.ci_low, "ci_high": c.ci_high,
            "p_value": c.p_value, "p_holm": None, "in_family": False, "t": c.t, "n_folds": c.n,
            "n_train": n_train, "n_test": n_test, "note": c.note}


def _adjust(comparisons: list[dict], primary: str) -> dict:
    """Holm over the CV comparisons on the primary metric (with 2+ folds); the others stay unadjusted."""
    protocol = "cv" if any(c["protocol"] == "cv" for c in comparisons) else None
    members = [c for c in comparisons if c["protocol"] == protocol and c["metric"] == primary
               and c["n_folds"] >= 2 and _finite(c["p_value"])]
    for c, p in zip(members, stats.holm([c["p_value"] for c in members])):
        c["p_holm"], c["in_family"] = float(p), True
    return {"protocol": protocol, "metric": primary, "method": "holm", "alpha": ALPHA, "size": len(members),
            "members": [f"{c['a']} - {c['b']}" for c in members]}


def _ceiling(finished: pd.DataFrame, truth: dict | None) -> list[dict]:
    """The noise ceiling: a fixed number per protocol, plus (CV) the range of a realised Bayes-rule accuracy."""
    if CEILING not in finished.columns:
        return []
    out = []
    for protocol in _ordered(finished["protocol"], PROTOCOL_ORDER):
        rows = finished[(finished["protocol"] == protocol) & finished[CEILING].notna()]
        if rows.empty:
            continue
        per_fold = rows.groupby(["repeat", "fold"])[CEILING].mean()
        entry = {"protocol": protocol, "mean": float(per_fold.mean()), "n_folds": len(per_fold),
                 "range_low": None, "range_high": None, "range_mass": None, "realised": None, "n_outfits": None,
                 "source": "fold runs", "note": ""}
        if protocol == "cv" and truth is not None:
            r = stats.bayes_accuracy_range(truth["p_positive"], truth.get("labels"), CONFIDENCE)
            entry.update(mean=r.expected, range_low=r.low, range_high=r.high, range_mass=r.coverage,
                         realised=r.realised, n_outfits=r.n, source=truth["source"])
        elif protocol == "cv":
            entry["note"] = "per-outfit P(positive) not recorded: no realised-accuracy range"
        else:
            entry["note"] = "expected Bayes accuracy on this split's test images"
        out.append(entry)
    return out


def _ceiling_gaps(groups: list[dict], ceiling: list[dict]) -> list[dict]:
    """Per model: expected Bayes accuracy − CV accuracy, and whether the accuracy lies in the realised range."""
    ceil = _find(ceiling, protocol="cv")
    if ceil is None:
        return []
    out = []
    for g in groups:
        if g["protocol"] != "cv" or g["metric"] != "accuracy" or not _finite(g["mean"]):
            continue
        within = None
        if _finite(ceil["range_low"], ceil["range_high"]):
            within = bool(ceil["range_low"] <= g["mean"] <= ceil["range_high"])
        out.append({"arch": g["arch"], "protocol": "cv", "accuracy": g["mean"], "mean_gap": ceil["mean"] - g["mean"],
                    "within_range": within, "n_folds": g["n_folds"]})
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
                 "ceiling_accuracy": row.get(CEILING, math.nan), "has_predictions": preds is not None,
                 "n_test_outfits": (int(preds["outfit_id"].nunique()) if preds is not None
                                    and "outfit_id" in preds.columns else None)}
        entry.update({m: row.get(m, math.nan) for m in METRICS})
        if _finite(entry["accuracy"], entry["n_test"]):
            w = stats.wilson_interval(int(round(entry["accuracy"] * entry["n_test"])), int(round(entry["n_test"])),
                                      CONFIDENCE)
            entry["accuracy_wilson"] = [w.ci_low, w.ci_high]
        for gr in groups:
            if gr["arch"] == arch and gr["protocol"] == protocol and gr["metric"] in COMPARED:
                entry[f"{gr['metric']}_interval"] = [gr["ci_low"], gr["ci_high"]]
                entry[f"{gr['metric']}_method"] = gr["method"]
                entry[f"{gr['metric']}_note"] = gr["note"]
        out.append(entry)
    return out


def _coverage(record: BenchmarkRecord) -> dict | None:
    """The latest coverage run for the dataset's generator, size and CV shape; None when there is none."""
    gen = (record.dataset or {}).get("generator")
    k, r = record.parent.params.get("n_splits"), record.parent.params.get("n_repeats")
    if not gen or not gen.get("name") or not (k and r):
        return None
    tags = {"neipalette.generator": str(gen["name"]), "neipalette.generator_version": str(gen.get("version")),
            "neipalette.n_outfits": str(gen.get("n_outfits")), "neipalette.cv": f"{k}x{r}"}
    found = record.latest_coverage(tags)
    if found is None:
        return {"found": False, "tags": tags}
    info, table = found
    used = table[table["method"] == INTERVAL_METHOD]
    per_method = table.groupby("method")["coverage"].min()
    return {"found": True, "run_id": info["run_id"], "start_time": _iso(info["start_time"]), "tags": tags,
            "n_datasets": int(table["n_datasets"].max()), "method": INTERVAL_METHOD,
            "min_coverage": {m: float(used.loc[used["metric"] == m, "coverage"].min()) for m in COMPARED
                             if (used["metric"] == m).any()},
            "best_method": str(per_method.idxmax()) if len(per_method) else None,
            "best_min_coverage": float(per_method.max()) if len(per_method) else None,
            "table": table.to_dict("records"), "params": info["params"]}


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
    """Plain sentences from the numbers. Claims about models rest only on the Holm-adjusted primary family."""
    out = []
    if report.n_jobs_finished < report.n_jobs_planned:
        out.append(f"Incomplete benchmark: {report.n_jobs_planned - report.n_jobs_finished} of "
                   f"{report.n_jobs_planned} planned fold jobs have no finished run; the numbers use the finished "
                   "folds only.")
    fam = report.family
    primary = _word(report.primary_metric)
    label = _cv_label(params) if fam.get("protocol") == "cv" else PROTOCOL_LABELS.get(fam.get("protocol"), "")
    members = [c for c in report.comparisons if c["in_family"]]
    if not members:
        out.append(f"Primary metric {primary}: no comparison has 2 or more finished paired folds, so no model is "
                   "judged.")
    else:
        secondary = _word(next(m for m in COMPARED if m != report.primary_metric))
        out.append(f"Primary metric: {primary}. Each claim below is a two-sided corrected t-test ({label}) with its "
                   f"p-value Holm-adjusted over the declared family of {len(members)} comparisons on {primary} "
                   f"(each CNN vs the chance level, CNN vs CNN, each CNN vs the best colour baseline), at "
                   f"α = {ALPHA}; {secondary} comparisons are secondary and unadjusted.")
        for c in members:
            out.append(_claim(c, report))
    out.extend(_vs_ceiling(report))
    out.extend(_widths(report, params))
    return [s for s in out if s]


def _word(m: str) -> str:
    return {"accuracy": "accuracy", "roc_auc": "ROC-AUC"}.get(m, m)


def _side(c: dict) -> str:
    if c["kind"] == "level":
        return f"the chance level ({_word(c['metric'])} {c['level']:.3f})"
    if c["kind"] == "baseline":
        return f"the best colour baseline, {_arch(c['b'])}"
    return _arch(c["b"])


def _claim(c: dict, report: Report) -> str:
    a, b = _arch(c["a"]), _side(c)
    numbers = (f"{_word(c['metric'])} difference {c['mean_diff']:+.3f} [{_f(c['ci_low'])}, {_f(c['ci_high'])}], "
               f"Holm-adjusted p = {_p(c['p_holm'])} (raw {_p(c['p_value'])})")
    if c["p_holm"] < ALPHA:
        if c["kind"] == "pair":
            better = a if c["mean_diff"] > 0 else _arch(c["b"])
            worse = _arch(c["b"]) if c["mean_diff"] > 0 else a
            return f"{better} beats {worse} on {_word(c['metric'])} ({numbers})."
        verb = "beats" if c["mean_diff"] > 0 else "is worse than"
        return f"{a} {verb} {b} on {_word(c['metric'])} ({numbers})."
    if c["kind"] == "pair":
        return f"{a} and {b} cannot be told apart on {_word(c['metric'])} ({numbers})."
    return f"{a} cannot be told apart from {b} on {_word(c['metric'])} ({numbers})."


def _vs_ceiling(report: Report) -> list[str]:
    """The ceiling as a fixed number with the spread of a realised Bayes-rule accuracy; every model above it."""
    ceil = _find(report.ceiling, protocol="cv")
    if ceil is None or not _finite(ceil["mean"]):
        return []
    has_range = _finite(ceil["range_low"], ceil["range_high"])
    text = f"Noise ceiling: expected Bayes accuracy {ceil['mean']:.3f}"
    if has_range:
        text += (f" on these {ceil['n_outfits']} outfits (a fixed number, no interval); a Bayes-rule classifier's "
                 f"realised accuracy under label noise lies in [{ceil['range_low']:.3f}, {ceil['range_high']:.3f}] "
                 f"for {100 * ceil['range_mass']:.1f}% of label draws (exact Poisson-binomial)")
        if _finite(ceil["realised"]):
            text += f", and it scores {ceil['realised']:.3f} on the labels actually drawn"
    else:
        text += f" (mean over the CV test folds; {ceil['note']})"
    out = [text + "."]
    for g in report.ceiling_gaps:
        if g["mean_gap"] >= 0:
            continue
        head = (f"{_arch(g['arch'])}'s CV accuracy {g['accuracy']:.3f} is {-g['mean_gap']:.3f} above the expected "
                "Bayes accuracy")
        if g["within_range"] is True:
            out.append(f"{head}, within the range a Bayes-rule classifier's realised accuracy has under label noise: "
                       "no evidence of beating the ceiling.")
        elif g["within_range"] is False:
            out.append(f"{head}, beyond the range a Bayes-rule classifier's realised accuracy has under label noise: "
                       "look for leakage between train and test.")
        else:
            out.append(f"{head}; without per-outfit P(positive) the spread under label noise is unknown.")
    return out


def _widths(report: Report, params: dict) -> list[str]:
    out = []
    for s in (s for s in report.seed_split if s["arch"] not in BASELINES):
        iv = s.get("accuracy_interval") or [math.nan, math.nan]
        w = s.get("accuracy_wilson") or [math.nan, math.nan]
        cv = _find(report.groups, arch=s["arch"], protocol="cv", metric="accuracy")
        if not _finite(*iv) and not _finite(*w):
            continue
        leak = ""
        if _finite(s.get("partner_in_train")):
            leak = f"; {int(s['partner_in_train'])} test images have their outfit partner in train"
        if _finite(*iv) and s.get("accuracy_method") == "cluster_bootstrap":
            head = (f"accuracy {s['accuracy']:.3f}, 95% interval [{iv[0]:.3f}, {iv[1]:.3f}] from an outfit-level "
                    f"bootstrap ({int(s['n_test'])} test images from {s['n_test_outfits']} outfits; Wilson "
                    f"[{w[0]:.3f}, {w[1]:.3f}] if the images were independent{leak})")
        else:
            head = (f"accuracy {s['accuracy']:.3f} with a 95% interval {w[1] - w[0]:.3f} wide (Wilson, "
                    f"{int(s['n_test'])} test samples taken as independent{leak})")
        text = f"{_arch(s['arch'])} on the single 60/20 split: {head}"
        if cv and _finite(cv["ci_low"], cv["ci_high"]):
            text += f"; {_cv_label(params)} gives {_ci(cv['mean'], cv['ci_low'], cv['ci_high'])}"
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
