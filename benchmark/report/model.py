"""The report of one benchmark as plain data: `build_report(record)` turns a
`benchmark.tracking.read.BenchmarkRecord` into a `Report` (reads artifacts, writes nothing).

It gathers the per-model intervals, header, single-split rows, coverage and figures here, and takes the
comparison family from `benchmark.report.family`, the noise ceiling from `benchmark.report.ceiling` and the
verdict sentences from `benchmark.report.verdicts`. Rendering it as text is `benchmark.report.render`; files
and the CLI are `benchmark.report`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

import pandas as pd

from benchmark import stats
from benchmark.coverage import measured
from benchmark.report import figures
from benchmark.report.ceiling import _ceiling, _ceiling_gaps, _chance_accuracy, _rater_ceiling, _truth
from benchmark.report.constants import (ARCH_LABELS, CEILING, COMPARED, CONFIDENCE, DEFAULT_BOOT_SEED, INTERVAL_METHOD,
                                        N_BOOT, PROTOCOL_LABELS, PROTOCOL_ORDER, _arch_order, _cnns, _ordered)
from benchmark.report.data import Report
from benchmark.report.family import _comparisons
from benchmark.report.format import _arch, _find, _finite, _isnull, _num
from benchmark.report.probe import load_feature_probe
from benchmark.report.tuning import tuning_figure, tuning_section
from benchmark.report.verdicts import verdict
from benchmark.tracking.read import BenchmarkRecord
from neipalette.evaluation.metrics import METRICS


def _metric_order(names: Iterable[str]) -> list[str]:
    names = list(names)
    head = [m for m in (*METRICS, CEILING) if m in names]
    return head + sorted(m for m in names if m not in head)


def _method(protocol: str, n_folds: int, metric: str, preds: pd.DataFrame | None = None) -> str:
    if stats.single_split(protocol, n_folds):
        if metric in COMPARED and preds is not None and "outfit_id" in preds.columns:
            return "cluster_bootstrap"
        return {"accuracy": "wilson", "roc_auc": "bootstrap"}.get(metric, "point")
    return INTERVAL_METHOD if metric in stats.UNIT_METRICS else "nadeau_bengio_t"


def _group_keys(record: BenchmarkRecord, finished: pd.DataFrame) -> list[tuple[str, str]]:
    planned = record.planned_jobs()
    pairs = set(zip(planned["arch"], planned["protocol"])) | set(zip(finished["arch"], finished["protocol"]))
    archs = _arch_order(a for a, _ in pairs)
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
        if stats.single_split(protocol, len(g)):
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
    comparisons, family = _comparisons(finished, primary, _chance_accuracy(record.dataset))
    ceiling = _ceiling(finished, truth)
    report = Report(
        run_id=record.parent.run_id, header=_header(record), groups=groups,
        comparisons=comparisons, ceiling=ceiling, ceiling_gaps=_ceiling_gaps(groups, ceiling),
        seed_split=_seed_split(frames, groups), missing_folds=_records(missing),
        n_jobs_planned=len(planned), n_jobs_finished=len(planned) - len(missing), boot_seed=boot_seed,
        config_text=record.config_text, frames=frames, primary_metric=primary, family=family,
        coverage=_coverage(record, finished["arch"].unique()), rater_ceiling=_rater_ceiling(record.dataset),
    )
    report.feature_probe = load_feature_probe(record)
    report.verdict = verdict(report, record.parent.params)
    report.figures = _figures(record, finished, report)
    report.tuning = tuning_section(finished, record.parent.params)
    if report.tuning:
        report.figures["tuning"] = tuning_figure(report.tuning, ARCH_LABELS)
    return report


def _primary_metric(params: dict) -> str:
    m = params.get("primary_metric", "roc_auc")
    return m if m in COMPARED else "roc_auc"


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


def _seed_split(frames: dict, groups: list[dict]) -> list[dict]:
    """The single 60/20 split as the original study reported it, plus intervals and partner leakage."""
    out = []
    for (arch, protocol), (g, preds, _) in frames.items():
        if not stats.single_split(protocol, len(g)):
            continue
        row = g.iloc[0]
        entry = {"arch": arch, "run_id": row["run_id"], "n_train": row["n_train"], "n_test": row["n_test"],
                 "n_test_images": row.get("n_test_images", math.nan),
                 "partner_in_train": row.get("partner_in_train", math.nan),
                 "ceiling_accuracy": row.get(CEILING, math.nan), "has_predictions": preds is not None,
                 "n_test_outfits": (int(preds["outfit_id"].nunique()) if preds is not None
                                    and "outfit_id" in preds.columns else None)}
        entry.update(_test_balance(preds))
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


def _test_balance(preds: pd.DataFrame | None) -> dict:
    """The test set's class balance from the fold run's predictions: positive images and, where the
    predictions name outfits, positive outfits; None where the run has no predictions."""
    out: dict = {"n_test_positive": None, "n_test_positive_outfits": None}
    if preds is None or "label" not in preds.columns:
        return out
    labels = pd.to_numeric(preds["label"], errors="coerce")
    out["n_test_positive"] = int((labels == 1).sum())
    if "outfit_id" in preds.columns:
        out["n_test_positive_outfits"] = int((labels.groupby(preds["outfit_id"]).max() == 1).sum())
    return out


def _coverage(record: BenchmarkRecord, models: Iterable[str]) -> dict | None:
    """The measured coverage this report may quote: the shipped table (`benchmark/coverage/measured.json`),
    else the latest MLflow coverage run for the dataset's generator, size and CV shape; each only when
    `benchmark.coverage.measured.refusal` finds nothing against it (never --quick, < 200 datasets, another
    generator, size, CV shape or model). None for a dataset the generator did not make."""
    gen = (record.dataset or {}).get("generator")
    k, r = record.parent.params.get("n_splits"), record.parent.params.get("n_repeats")
    if not gen or not gen.get("name") or not (k and r):
        return None
    shape = {"generator": str(gen["name"]), "version": gen.get("version"), "n_outfits": gen.get("n_outfits"),
             "n_splits": k, "n_repeats": r, "input_mode": record.parent.params.get("input_mode", "pair")}
    tags = {"neipalette.generator": str(gen["name"]), "neipalette.generator_version": str(gen.get("version")),
            "neipalette.n_outfits": str(gen.get("n_outfits")), "neipalette.cv": f"{k}x{r}"}
    refused = []
    for source, doc in _coverage_candidates(record, tags):
        why = measured.refusal(doc, **shape)
        rows = measured.quotable_rows(doc, models) if why is None else []
        if why is None and not rows:
            why = "it measured none of this report's models"
        if why is not None:
            refused.append(f"{source}: {why}")
            continue
        # the header quotes the mean intervals only; difference rows are listed in the table after them
        table = pd.DataFrame([r for r in rows if not measured.is_difference(r)])
        used = table[table["method"] == INTERVAL_METHOD]
        per_method = table.groupby("method")["coverage"].min()
        return {"found": True, "source": source, "run_id": doc.get("run_id"), "start_time": doc.get("start_time"),
                "commit": doc.get("commit"), "tags": tags, "n_datasets": int(table["n_datasets"].max()),
                "method": INTERVAL_METHOD, "estimand": doc.get("settings", {}).get("estimand"),
                "min_coverage": {m: float(used.loc[used["metric"] == m, "coverage"].min()) for m in COMPARED
                                 if (used["metric"] == m).any()},
                "best_method": str(per_method.idxmax()) if len(per_method) else None,
                "best_min_coverage": float(per_method.max()) if len(per_method) else None,
                "seconds": doc.get("seconds"), "cpu_seconds": doc.get("cpu_seconds"),
                "report_models": sorted(str(m) for m in models),
                "table": rows, "params": doc.get("settings", {})}
    return {"found": False, "tags": tags, "refused": refused}


def _coverage_candidates(record: BenchmarkRecord, tags: dict) -> Iterable[tuple[str, dict]]:
    shipped = measured.load()
    if shipped is not None:
        yield f"{measured.MEASURED.name} (commit {str(shipped.get('commit'))[:10]})", shipped
    found = record.latest_coverage(tags)
    if found is not None:
        info, table = found
        p, t = info["params"], info.get("tags", {})
        settings = {"generator": t.get("neipalette.generator"), "generator_version": t.get("neipalette.generator_version"),
                    "n_outfits": t.get("neipalette.n_outfits"), **p}
        settings["n_splits"], settings["n_repeats"] = t.get("neipalette.cv", "x").split("x")
        settings["n_datasets"] = p.get("n_datasets", 0)
        yield f"coverage run {info['run_id']}", {
            "quick": t.get("neipalette.quick") == "true", "settings": settings, "run_id": info["run_id"],
            "start_time": _iso(info["start_time"]), "coverage": table.to_dict("records")}


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


def _figures(record: BenchmarkRecord, finished: pd.DataFrame, report: Report) -> dict[str, bytes]:
    out = {}
    cv = finished[finished["protocol"] == "cv"]
    order = _arch_order(cv["arch"])
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
        ceil, rater = _find(report.ceiling, protocol="cv"), report.rater_ceiling
        if ceil:
            out["forest"] = figures.forest_figure(rows, ceiling=ceil["mean"])
        elif rater:
            out["forest"] = figures.forest_figure(rows, ceiling=rater["estimate"],
                                                  ceiling_interval=(_num(rater["ci_low"]), _num(rater["ci_high"])),
                                                  ceiling_label="rater-based ceiling")
        else:
            out["forest"] = figures.forest_figure(rows)
    if not cv.empty:
        out["folds"] = figures.fold_scores_figure(cv, order=order, labels=ARCH_LABELS)
    return out


FIGURE_CAPTIONS = {
    "roc": "Mean ROC curve per model over the CV folds (each fold's curve interpolated on a common FPR grid); "
           "band = ±1 sd for the CNNs.",
    "forest": "Accuracy and ROC-AUC with 95% intervals per model and protocol; dotted line 0.5; on the accuracy "
              "panel the dashed line is the CV noise ceiling (known from truth.csv, or the raters' estimate with its "
              "95% interval shaded), absent when the dataset has neither.",
    "folds": "Per-fold CV scores per model; the bar is the mean.",
    "tuning": "Learning rate and epochs chosen by nested tuning in each outer fold (circles: CV, squares: 60/20 "
              "split); dashed box: the search range; red rings: choices at its edge.",
}


