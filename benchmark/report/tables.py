"""The report's tables (Tables 2 and 3 of the original study with intervals, comparisons, ceiling gaps, the
single split, coverage, missing folds) and its header lines, as plain rows the renderers lay out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from benchmark.coverage import measured
from benchmark.report.constants import (_POINT_NOTE, ALPHA, CHANCE_LEVEL, CLASS_METRICS, COVERAGE_GOAL, DIFFERENCE_METHOD,
                                        INTERVAL_METHOD, N_BOOT, TABLE2)
from benchmark.report.data import Report
from benchmark.report.format import _arch, _balance, _f, _find, _finite, _p, _word
from benchmark.stats import EDGE_NOTE
from neipalette.data.aggregate import BIAS_NOTE

EDGE_MARK = "†"


# -- tables ---------------------------------------------------------------------------------------------
def _metric_label(m: str) -> str:
    return dict(TABLE2).get(m, m)


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


def _bound(x) -> str:
    """A bound at 3 decimals, marked when it sits at the edge of [0, 1]."""
    if not _finite(x):
        return "n/a"
    text = f"{x:.3f}"
    return text + EDGE_MARK if text in ("0.000", "1.000") else text


def _ci(mean, lo, hi) -> str:
    if not _finite(mean):
        return "n/a"
    return f"{mean:.3f} [{_bound(lo)}, {_bound(hi)}]" if _finite(lo, hi) else f"{mean:.3f} [n/a]"


def _cell(report: Report, arch: str, protocol: str, metric: str, notes: list[str]) -> str:
    g = _find(report.groups, arch=arch, protocol=protocol, metric=metric)
    if g is None:
        return "—"
    if g["note"] and g["note"] not in (_POINT_NOTE, EDGE_NOTE):
        note = f"{_arch(arch)} ({protocol}) {metric}: {g['note']}"
        if note not in notes:
            notes.append(note)
    return _ci(g["mean"], g["ci_low"], g["ci_high"])


def _edge_note(report: Report, notes: list[str]) -> None:
    if any(g["note"] == EDGE_NOTE for g in report.groups):
        notes.append(f"{EDGE_MARK} {EDGE_NOTE}.")


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
            cell = f"{ceil['mean']:.3f} (fixed)"
            if _finite(ceil["range_low"], ceil["range_high"]):
                cell += f"; realised {ceil['range_low']:.3f}–{ceil['range_high']:.3f}"
            rows.append(["Noise ceiling (Bayes)", protocol, "—", cell, "—", "—", "—", "—"])
            if ceil["note"]:
                notes.append(f"Noise ceiling ({protocol}): {ceil['note']}")
        rater = report.rater_ceiling
        if protocol == "cv" and rater and not ceil:
            rows.append(["Noise ceiling (raters' estimate)", protocol, "—",
                         _ci(rater["estimate"], rater["ci_low"], rater["ci_high"]), "—", "—", "—", "—"])
            notes.append("Noise ceiling (raters' estimate): the Bayes accuracy estimated from the raters' votes "
                         "(`neipalette data aggregate`, agreement.json) with its 95% bootstrap interval over outfits; "
                         f"the dataset has no truth.csv. The estimate is {BIAS_NOTE}.")
    if any(p == "seed_split" for p, _, _ in groups):
        notes.insert(0, f"seed_split: one 60/20 split; accuracy and ROC-AUC have a percentile bootstrap over test "
                        f"outfits ({N_BOOT} resamples, seed {report.boot_seed}; both images of an outfit stay "
                        "together); other metrics are point estimates [n/a].")
    if report.ceiling:
        notes.append("Noise ceiling: the expected accuracy of the Bayes rule (a fixed property of the outfits) and, "
                     "beside it, the central 95% range of the accuracy that rule realises under label noise.")
    _edge_note(report, notes)
    return _Table(["Model", "Protocol", "Folds", *(lab for _, lab in TABLE2)], rows, notes)


def _table3(report: Report) -> _Table:
    notes: list[str] = []
    rows = []
    for cls, ms in CLASS_METRICS.items():
        for protocol, arch, _ in _group_list(report):
            rows.append([cls, _arch(arch), protocol, *(_cell(report, arch, protocol, m, notes) for m in ms)])
    _edge_note(report, notes)
    return _Table(["Class", "Model", "Protocol", "Precision", "Recall", "F1"], rows, notes)


def _side(c: dict) -> str:
    return f"chance level ({c['level']:.3f})" if c["b"] == CHANCE_LEVEL else _arch(c["b"])


def _comparison_table(report: Report) -> _Table:
    rows, notes = [], []
    single = [c for c in report.comparisons if c["protocol"] == "seed_split" and c["n_folds"] < 2]
    if single:
        notes.append("The 60/20 split is a single fold, so its comparisons have no test and are left out here "
                     "(they are in report.json).")
    fam = report.family
    for c in sorted((c for c in report.comparisons if c not in single), key=lambda c: not c["in_family"]):
        role = "primary (Holm family)" if c["in_family"] else "secondary (unadjusted)"
        rows.append([f"{_arch(c['a'])} − {_side(c)}", c["protocol"], _metric_label(c["metric"]), role,
                     str(c["n_folds"]), f"{c['mean_diff']:+.3f}" if _finite(c["mean_diff"]) else "n/a",
                     f"[{_f(c['ci_low'])}, {_f(c['ci_high'])}]", _p(c["p_value"]),
                     _p(c["p_holm"]) if c["in_family"] else "—"])
        if c["note"]:
            note = f"{_arch(c['a'])} − {_side(c)} ({c['protocol']}, {c['metric']}): {c['note']}"
            if note not in notes:
                notes.append(note)
    declared = fam.get("declared", fam.get("size", 0))
    notes.insert(0, f"Declared family: on {_word(fam.get('metric', 'roc_auc'))} ({fam.get('protocol') or 'n/a'}), "
                    f"{declared} comparisons fixed before the results (every colour baseline of the run, none "
                    f"picked by its score), {fam.get('size', 0)} of them testable, Holm-adjusted at α = {ALPHA}; a "
                    "comparison whose paired differences are all equal is not testable and gets no p-value. Tests "
                    "against the chance level use the known level (ROC-AUC 0.5; for accuracy the no-information "
                    "rate max(π, 1−π) of the dataset's class balance) with the corrected variance of the model's own "
                    "folds. Intervals are 95% corrected t intervals of the difference, not adjusted.")
    return _Table(["Comparison", "Protocol", "Metric", "Role", "Folds", "Mean diff", "95% CI", "p (raw)",
                   "p (Holm)"], rows, notes)


def _gap_table(report: Report) -> _Table:
    ceil = _find(report.ceiling, protocol="cv") or {}
    rng = (f"[{ceil['range_low']:.3f}, {ceil['range_high']:.3f}]"
           if _finite(ceil.get("range_low"), ceil.get("range_high")) else "n/a")
    rows = [[_arch(g["arch"]), f"{g['accuracy']:.3f}", f"{g['mean_gap']:+.3f}",
             {True: "yes", False: "no", None: "n/a"}[g["within_range"]]] for g in report.ceiling_gaps]
    return _Table(["Model", "CV accuracy", "Expected Bayes − accuracy", f"Within realised Bayes range {rng}"], rows,
                  ["A model at the ceiling scores anywhere in the realised range, depending on the label draw."])


def _seed_table(report: Report) -> _Table:
    rows = []
    for s in report.seed_split:
        a = s.get("accuracy_interval") or [math.nan, math.nan]
        w = s.get("accuracy_wilson") or [math.nan, math.nan]
        b = s.get("roc_auc_interval") or [math.nan, math.nan]
        rows.append([_arch(s["arch"]), _f(s["n_train"], 0), _f(s["n_test"], 0), _balance(s) or "n/a",
                     _f(s["partner_in_train"], 0), _f(s["accuracy"]), f"[{_f(a[0])}, {_f(a[1])}]",
                     f"[{_f(w[0])}, {_f(w[1])}]", _f(s["precision"]), _f(s["recall"]), _f(s["f1"]),
                     _f(s["roc_auc"]), f"[{_f(b[0])}, {_f(b[1])}]"])
    notes = [f"{_arch(s['arch'])}: {s[k]}" for s in report.seed_split
             for k in ("accuracy_note", "roc_auc_note") if s.get(k)]
    notes.insert(0, "95% intervals from a bootstrap over test outfits (the two images of an outfit share its label "
                    "and photo); Wilson is what one would report if the test images were independent.")
    return _Table(["Model", "Train", "Test", "Test balance", "Partner in train", "Accuracy", "Outfit bootstrap 95%",
                   "Wilson 95% (images independent)", "Precision", "Recall", "F1", "ROC-AUC",
                   "Outfit bootstrap 95%"], rows, notes)


def _coverage_lines(report: Report) -> tuple[list[str], list[str]]:
    """Header line(s) about the measured coverage of the report's CV intervals, and a warning when short."""
    cov = getattr(report, "coverage", None)
    if cov is None:
        return [], []
    if not cov["found"]:
        why = "; ".join(cov.get("refused", []))
        return [f"Interval coverage: not measured for this generator, size, CV shape and these models"
                f"{' (not quoted: ' + why + ')' if why else ''} (`python -m benchmark.coverage --config <this config> "
                "--ship` measures it)."], []
    mins = cov["min_coverage"]
    used = {r["metric"]: r for r in cov["table"] if r["method"] == INTERVAL_METHOD}
    worst_rows = {m: min((r for r in cov["table"] if r["method"] == INTERVAL_METHOD and r["metric"] == m),
                         key=lambda r: r["coverage"]) for m in mins if m in used}
    def cp(m: str) -> str:
        r = worst_rows.get(m, {})
        return f" (Clopper-Pearson [{r['cp_low']:.3f}, {r['cp_high']:.3f}])" if _finite(r.get("cp_low", math.nan)) else ""

    parts = ", ".join(f"{_word(m)} {v:.3f}{cp(m)}" for m, v in mins.items())
    where = (f"coverage run `{cov['run_id']}` ({cov['start_time']})" if cov.get("run_id")
             else f"{cov['source']}, shipped")
    measured_models = sorted({r["model"] for r in cov["table"] if not measured.is_difference(r)})
    unmeasured = sorted(set(cov.get("report_models", [])) - set(measured_models))
    line = (f"Interval coverage: the CV intervals here ({INTERVAL_METHOD}) covered the true value in at least "
            f"{parts} of {cov['n_datasets']} generated datasets (worst of {', '.join(measured_models)}) at nominal "
            f"95% — {where}" + (f"; not measured for {', '.join(unmeasured)}" if unmeasured else "") + ".")
    warnings = []
    worst = min(mins.values()) if mins else math.nan
    if _finite(worst) and worst < COVERAGE_GOAL:
        best = cov.get("best_min_coverage")
        if best is not None and best < COVERAGE_GOAL:
            warnings.append(f"WARNING: no interval method reached {COVERAGE_GOAL:.0%} coverage at nominal 95% in the "
                            f"latest coverage run (best worst-case: {cov['best_method']} at {best:.3f}; this report's "
                            f"{INTERVAL_METHOD}: {worst:.3f}); read the CV intervals as somewhat too narrow.")
        else:
            warnings.append(f"WARNING: this report's CV intervals ({INTERVAL_METHOD}) covered only {worst:.3f} at "
                            f"nominal 95% in the latest coverage run (goal {COVERAGE_GOAL:.0%}).")
    return [line], warnings


def _coverage_table(report: Report) -> _Table:
    cov = report.coverage or {}

    def cp(r: dict) -> str:
        return f"[{r['cp_low']:.3f}, {r['cp_high']:.3f}]" if _finite(r.get("cp_low", math.nan)) else "n/a"

    def floored(r: dict) -> str:
        return f"{r['floor_share']:.0%}" if _finite(r.get("floor_share", math.nan)) else ""

    def used_here(r: dict) -> bool:
        return r["method"] == (DIFFERENCE_METHOD if measured.is_difference(r) else INTERVAL_METHOD)

    def name(r: dict) -> str:
        return f"{r['model_a']} − {r['model_b']}" if measured.is_difference(r) else r["model"]

    rows = [[name(r), _word(r["metric"]), r["method"] + (" (used here)" if used_here(r) else ""),
             f"{r['coverage']:.3f} ± {r['mc_se']:.3f}" if _finite(r["coverage"]) else "n/a", cp(r),
             _f(r["mean_width"]), _f(r["truth"]), floored(r)] for r in cov.get("table", [])]
    p = cov.get("params", {})
    took = cov.get("cpu_seconds")
    notes = [f"{cov.get('n_datasets')} datasets of {p.get('n_outfits', '?')} outfits from the generator, "
             f"{p.get('n_repeats', '?')}×{p.get('n_splits', '?')}-fold CV, pair input; estimand: "
             f"{p.get('estimand') or 'expected score of the same procedure trained on n_train outfits'}, computed on "
             f"{p.get('pool_outfits', '?')} fresh outfits. ± is the Monte Carlo standard error; Clopper-Pearson is the "
             "exact 95% interval of the coverage over datasets. Floor: share of datasets where the logit method's "
             "variance floor replaced the per-fold sample variance (there it is wider, not better calibrated). "
             "Rows a − b: the paired per-fold difference of two models on the same folds, truth = truth_a − truth_b; "
             f"{DIFFERENCE_METHOD} is the comparisons' interval here (corrected t on the Fisher-z scale), "
             "corrected_t the plain one on the difference scale."
             + (f" Source: {cov.get('source')}" + (f", {took / 60:.0f} CPU-min" if _finite(took or math.nan) else "")
                + "." if cov.get("source") else "")]
    return _Table(["Model", "Metric", "Method", "Coverage", "Clopper-Pearson 95%", "Mean width", "Truth", "Floor"],
                  rows, notes)


def _missing_table(report: Report) -> _Table:
    rows = [[_arch(m["arch"]), m["protocol"], str(m["repeat"]), str(m["fold"]), m.get("status") or "",
             m.get("error") or ""] for m in report.missing_folds]
    return _Table(["Model", "Protocol", "Repeat", "Fold", "Last status", "Error"], rows)


def _agreement_lines(agreement: dict | None) -> list[str]:
    """The raters' agreement (agreement.json, recorded in dataset.json): Fleiss' κ and Krippendorff's α."""
    if not agreement:
        return []

    def iv(x: dict | None) -> str:
        if not x or not _finite(x.get("estimate")):
            return "n/a (needs outfits rated by two or more raters)"
        return _ci(x["estimate"], x.get("ci_low"), x.get("ci_high"))

    raters = agreement.get("raters") or {}
    votes = f" over {agreement['n_votes']} votes of {len(raters)} raters" if agreement.get("n_votes") else ""
    return [f"Rater agreement{votes} (agreement.json): Fleiss' κ {iv(agreement.get('fleiss_kappa'))}, "
            f"Krippendorff's α (nominal) {iv(agreement.get('krippendorff_alpha'))}; 95% percentile bootstrap over "
            "outfits"]


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
        rc = d.get("rater_ceiling")
        if not d.get("has_truth") and rc:
            truth += (f"; rater-based noise ceiling (estimate from ratings.csv, agreement.json) {rc['estimate']:.3f} "
                      f"[{rc['ci_low']:.3f}, {rc['ci_high']:.3f}]")
        lines.append(f"Dataset: `{name}` — {d.get('n_outfits', '?')} outfits{bal}; content hash "
                     f"`{d.get('hash') or h.get('dataset_hash')}`; {truth}")
        lines += [f"Splits: {d['split_grouping']}"] if d.get("split_grouping") else []
        lines += _agreement_lines(d.get("rater_agreement"))
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
    primary = getattr(report, "primary_metric", None)  # header-only callers may pass a partial report
    if primary:
        lines.append(f"Primary metric: {_word(primary)} (config `primary_metric`); verdicts use Holm-adjusted p over "
                     "the declared comparison family on it")
    cov_lines, cov_warnings = _coverage_lines(report)
    return lines + cov_lines, warnings + cov_warnings
