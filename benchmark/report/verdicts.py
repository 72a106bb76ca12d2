"""The report's verdict: plain sentences from its numbers; claims about models rest only on the
Holm-adjusted primary family."""

from __future__ import annotations

import math

from benchmark.report.constants import ALPHA, BASELINES, COMPARED, PROTOCOL_LABELS
from benchmark.report.data import Report
from benchmark.report.format import _arch, _balance, _ci, _f, _find, _finite, _p, _word


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
        declared = fam.get("declared", len(members))
        untestable = fam.get("not_testable", [])
        skipped = (f" ({declared - len(members)} of the {declared} declared are not testable and carry no p-value)"
                   if untestable else "")
        out.append(f"Primary metric: {primary}. Each claim below is a two-sided corrected t-test ({label}) with its "
                   f"p-value Holm-adjusted over the family of {len(members)} testable comparisons on {primary}"
                   f"{skipped}, declared before the results: each CNN vs the chance level, CNN vs CNN, each CNN vs "
                   f"each colour baseline; at α = {ALPHA}. Intervals beside a claim are unadjusted 95% intervals of "
                   f"the difference; the Holm p-value is the claim. {secondary[:1].upper()}{secondary[1:]} comparisons are "
                   "secondary and "
                   "unadjusted.")
        for c in members:
            out.append(_claim(c, report))
        for c in (c for c in report.comparisons if c["protocol"] == fam.get("protocol")
                  and c["metric"] == report.primary_metric and not c["in_family"]):
            out.append(f"{_arch(c['a'])} vs {_side(c)} on {primary}: {c['note'] or 'not testable'}; no verdict.")
    out.extend(_above_chance(report))
    out.extend(_vs_ceiling(report))
    out.extend(_widths(report, params))
    return [s for s in out if s]


def _above_chance(report: Report) -> list[str]:
    """Which rows are above the chance level, read off each row's own CV interval of the primary metric
    (descriptive and unadjusted: the Holm family above holds the claims about CNNs)."""
    m = report.primary_metric
    level = 0.5 if m == "roc_auc" else next(
        (c["level"] for c in report.comparisons if c["kind"] == "level" and c["metric"] == m), None)
    rows = [g for g in report.groups if g["protocol"] == "cv" and g["metric"] == m and g["arch"] != "chance"
            and _finite(g["ci_low"], g["ci_high"])]
    if level is None or not rows:
        return []

    def _row(g: dict) -> str:
        return f"{_arch(g['arch'])} {g['mean']:.3f} [{g['ci_low']:.3f}, {g['ci_high']:.3f}]"

    above = [g for g in rows if g["ci_low"] > level]
    rest = [g for g in rows if g["ci_low"] <= level]
    return [f"Above the chance level ({_word(m)} {level:.3f}), each row's own 95% CV interval lying above it "
            f"(per row, unadjusted): {', '.join(map(_row, above)) or 'none'}; not shown above it: "
            f"{', '.join(map(_row, rest)) or 'none'}."]


def _side(c: dict) -> str:
    if c["kind"] == "level":
        return f"the chance level ({_word(c['metric'])} {c['level']:.3f})"
    if c["kind"] == "baseline":
        return f"the colour baseline {_arch(c['b'])}"
    return _arch(c["b"])


def _claim(c: dict, report: Report) -> str:
    a, b = _arch(c["a"]), _side(c)
    numbers = (f"{_word(c['metric'])} difference {c['mean_diff']:+.3f}, unadjusted 95% interval "
               f"[{_f(c['ci_low'])}, {_f(c['ci_high'])}], Holm-adjusted p = {_p(c['p_holm'])} (raw {_p(c['p_value'])})")
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
        text += (f" on these {ceil['n_outfits']} outfits (a fixed number, no interval); if the outfits' labels are "
                 f"drawn independently, a Bayes-rule classifier's realised accuracy lies in "
                 f"[{ceil['range_low']:.3f}, {ceil['range_high']:.3f}] for {100 * ceil['range_mass']:.1f}% of label "
                 "draws (exact Poisson-binomial)")
        if _finite(ceil["realised"]):
            text += f", and it scores {ceil['realised']:.3f} on the labels actually drawn"
        bal = ceil.get("balanced")
        if bal:
            text += (f"; under the generator's own process (the threshold re-drawn so that half the outfits are "
                     f"positive; {bal['draws']:,} simulated draws) that range holds {100 * bal['mass']:.1f}% and "
                     f"the central 95% is [{bal['low']:.3f}, {bal['high']:.3f}]")
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
        balance = f"; {_balance(s)}" if _balance(s) else ""
        if _finite(*iv) and s.get("accuracy_method") == "cluster_bootstrap":
            head = (f"accuracy {s['accuracy']:.3f}, 95% interval [{iv[0]:.3f}, {iv[1]:.3f}] from an outfit-level "
                    f"bootstrap ({int(s['n_test'])} test images from {s['n_test_outfits']} outfits{balance}; Wilson "
                    f"[{w[0]:.3f}, {w[1]:.3f}] if the images were independent{leak})")
        else:
            head = (f"accuracy {s['accuracy']:.3f} with a 95% interval {w[1] - w[0]:.3f} wide (Wilson, "
                    f"{int(s['n_test'])} test samples taken as independent{balance}{leak})")
        text = f"{_arch(s['arch'])} on the single 60/20 split: {head}"
        if cv and _finite(cv["ci_low"], cv["ci_high"]):
            text += f"; {_cv_label(params)} gives {_ci(cv['mean'], cv['ci_low'], cv['ci_high'])}"
        out.append(text + ".")
    return out
