"""The sweep report: accuracy and ROC-AUC against the number of outfits (intervals, ceiling), a table, the
power of the CNN − chance test against n, and the rater panel grid (K raters × noise σ).

`python -m benchmark.report --run-id <sweep run>` writes reports/<sweep run>/sweep.{md,json} and the figure
PNGs, and logs them on the sweep run under `report/`. Reads MLflow through `benchmark.tracking.sweep` only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from matplotlib.figure import Figure

from benchmark import stats
from benchmark.config import BASELINE_NAMES
from benchmark.report.figures import _colours, _png
from benchmark.report.constants import ARCH_LABELS
from benchmark.sweep import power as pw
from benchmark.sweep.config import ALPHA, TARGET_POWER
from benchmark.tracking.sweep import SweepRecord, load_sweep

ORIGINAL_N = 40
INTERVAL_NOTE = ("the default report's: Nadeau-Bengio corrected t (df = J-1, 95%) on the logit scale for a mean, on "
                 "the Fisher-z scale for a difference, so no bound leaves [0, 1] or [-1, 1] (benchmark.stats)")
METRICS = (("accuracy", "Accuracy"), ("roc_auc", "ROC-AUC"))


@dataclass
class SweepReport:
    run_id: str
    header: dict
    rows: list[dict]  # one per (point, model)
    ceilings: list[dict]  # one per point
    power: list[dict]  # one per (panel, CNN)
    power_curves: dict[str, dict] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)

    def as_json(self) -> dict:
        return _jsonable({"run_id": self.run_id, "header": self.header, "rows": self.rows,
                          "ceilings": self.ceilings, "power": self.power,
                          "method": {"interval": INTERVAL_NOTE,
                                     "power": pw.__doc__.strip()}})


def _label(model: str) -> str:
    return ARCH_LABELS.get(model, model)


def _panel(p) -> str:
    return f"K={p.n_raters}, σ={p.sigma}"  # the same spelling as f"K={row['n_raters']}, σ={row['sigma']}"


def build_sweep_report(record: SweepRecord) -> SweepReport:
    cfg = yaml.safe_load(record.config_text or "{}") or {}
    bench = cfg.get("benchmark", {})
    primary = cfg.get("primary_metric", "roc_auc")
    k, r = int(bench.get("n_splits", 5)), int(bench.get("n_repeats", 5))
    rows, ceilings, weights = [], [], {}
    per_panel: dict[str, dict[str, list[pw.SizeResult]]] = {}
    for pt in sorted(record.points, key=lambda p: (_num(p.n_raters), _num(p.sigma), p.n_outfits)):
        b = pt.benchmark
        weights.update(b.parent.weights)
        folds = b.finished_folds()
        folds = folds[folds["protocol"] == "cv"]
        ceilings.append({"key": pt.key, "n_outfits": pt.n_outfits, "n_raters": pt.n_raters, "sigma": pt.sigma,
                         "status": pt.status, "benchmark_run_id": b.parent.run_id,
                         "ceiling_accuracy": _parent_metric(b, "ceiling_accuracy"),
                         "ceiling_roc_auc": _parent_metric(b, "ceiling_roc_auc"),
                         "seconds": _parent_metric(b, "sweep_point_seconds")})
        for model, g in folds.groupby("arch", sort=False):
            n1, n2 = float(g["n_train"].mean()), float(g["n_test"].mean())
            row = {"key": pt.key, "n_outfits": pt.n_outfits, "n_raters": pt.n_raters, "sigma": pt.sigma,
                   "model": model, "cnn": model not in BASELINE_NAMES, "n_folds": int(len(g)), "n_train": n1, "n_test": n2}
            for m, _ in METRICS:  # the report's interval: corrected t on the logit scale, inside [0, 1]
                iv = stats.bounded_interval(g[m].to_numpy(float), n1, n2)
                row.update({f"{m}_mean": iv.mean, f"{m}_ci_low": iv.ci_low, f"{m}_ci_high": iv.ci_high})
            c = stats.test_against_level(g[primary].to_numpy(float), pw.CHANCE_LEVEL[primary], n1, n2)
            row.update({"gap": c.mean_diff, "gap_ci_low": c.ci_low, "gap_ci_high": c.ci_high, "t": c.t,
                        "p": c.p_value, "note": c.note})
            rows.append(row)
            if model not in BASELINE_NAMES:
                per_panel.setdefault(_panel(pt), {}).setdefault(model, []).append(
                    pw.SizeResult(pt.n_outfits, g[primary].to_numpy(float), n1, n2))
    power_rows, curves = [], {}
    for panel, models in per_panel.items():
        for model, sizes in models.items():
            if len(sizes) < 2:
                continue
            chance = pw.CHANCE_LEVEL[primary]
            fit = pw.fit(sizes, chance, j=k * r, test_fraction=1 / k, n_ref=ORIGINAL_N,
                         ceiling=_ceiling(ceilings, panel, primary))
            measured = [{"n_outfits": s.n_outfits, "n_folds": int(np.isfinite(s.scores).sum()),
                         "fold_var": float(np.nanvar(s.scores, ddof=1))} for s in sizes]
            row = {"panel": panel, "model": model, "metric": primary, "chance_level": chance, "protocol_folds": k * r,
                   "k": k, "r": r, "measured": measured}
            if fit is not None:
                lo, hi = pw.needed_n_interval(sizes, chance, j=k * r, test_fraction=1 / k, n_ref=ORIGINAL_N,
                                              ceiling=_ceiling(ceilings, panel, primary))
                row.update({"a": fit.a, "b": fit.b, "s2": fit.s2, "beta": fit.beta,
                            "gap_at_40": float(fit.gap(ORIGINAL_N)), "power_at_40": fit.power(ORIGINAL_N),
                            "needed_n": fit.needed_n(TARGET_POWER), "needed_n_ci_low": lo, "needed_n_ci_high": hi})
                for mrow in measured:
                    mrow["model_var"] = float(fit.var(mrow["n_outfits"]))
                row["gap_at_needed"] = float(fit.gap(row["needed_n"])) if row["needed_n"] else math.nan
                grid = pw.GRID[(pw.GRID >= 10) & (pw.GRID <= 5000)]
                curves[f"{panel}|{model}"] = {"n": grid.tolist(), "power": [fit.power(int(n)) for n in grid]}
            power_rows.append(row)
    header = {"run_id": record.run_id, "run_name": record.run_name, "status": record.status,
              "n_points": len(record.points), "n_points_planned": len(record.planned),
              "generator": cfg.get("generator", {}), "archs_run": cfg.get("archs_run", []),
              "weights": weights, "primary_metric": primary, "protocol": f"{k}-fold CV x {r} repeats (base)",
              "repeats_by_size": cfg.get("repeats", {}), "wall_seconds": _wall(record),
              "tuning": _tuning(bench.get("tuning", {})),
              "alpha": ALPHA, "target_power": TARGET_POWER}
    report = SweepReport(record.run_id, header, rows, ceilings, power_rows, curves)
    report.figures = _figures(report)
    return report


def _tuning(t: dict) -> str:
    if t.get("enabled", True):
        return (f"nested Optuna tuning, {t.get('n_trials', '?')} trials x {t.get('inner_folds', '?')} inner folds "
                "per outer fold")
    return f"no tuning: fixed learning rate {t.get('learning_rate')} and {t.get('epochs')} epochs for every CNN head"


def _ceiling(ceilings: list[dict], panel: str, metric: str) -> float:
    """The metric's Bayes ceiling at the panel's largest size (1.0 when unknown)."""
    rows = [c for c in ceilings if f"K={c['n_raters']}, σ={c['sigma']}" == panel]
    v = max(rows, key=lambda c: c["n_outfits"]).get(f"ceiling_{metric}", math.nan) if rows else math.nan
    return float(v) if math.isfinite(v) else 1.0


def _parent_metric(b, name: str) -> float:
    try:
        run = b.client.get_run(b.parent.run_id)
    except Exception:  # noqa: BLE001 - a missing metric is reported as nan
        return math.nan
    return float(run.data.metrics.get(name, math.nan))


def _wall(record: SweepRecord) -> float:
    if record.start_time and record.end_time:
        return (record.end_time - record.start_time) / 1000
    return math.nan


# -- figures --------------------------------------------------------------------------------------------
def _panels(report: SweepReport) -> list[str]:
    return list(dict.fromkeys(f"K={r['n_raters']}, σ={r['sigma']}" for r in report.ceilings))


def _figures(report: SweepReport) -> dict[str, bytes]:
    out = {}
    sizes = sorted({r["n_outfits"] for r in report.ceilings})
    if len(sizes) > 1:
        out["learning_curve"] = _learning_curve(report)
    if report.power_curves:
        out["power"] = _power_figure(report)
    if len({(r["n_raters"], r["sigma"]) for r in report.ceilings}) > 1:
        out["raters"] = _raters_figure(report)
    return out


def _learning_curve(report: SweepReport) -> bytes:
    panels = [p for p in _panels(report)
              if len({c["n_outfits"] for c in report.ceilings if f"K={c['n_raters']}, σ={c['sigma']}" == p}) > 1]
    models = list(dict.fromkeys(r["model"] for r in sorted(report.rows, key=lambda r: not r["cnn"])))
    colours = _colours(models)
    fig = Figure(figsize=(10.0, 3.9 * len(panels)))
    axes = fig.subplots(len(panels), 2, squeeze=False)
    for row_axes, panel in zip(axes, panels):
        ceil = [c for c in report.ceilings if f"K={c['n_raters']}, σ={c['sigma']}" == panel]
        for ax, (m, title) in zip(row_axes, METRICS):
            for model in models:
                rs = sorted((r for r in report.rows if r["model"] == model
                             and f"K={r['n_raters']}, σ={r['sigma']}" == panel), key=lambda r: r["n_outfits"])
                if not rs:
                    continue
                n = np.array([r["n_outfits"] for r in rs])
                mean = np.array([r[f"{m}_mean"] for r in rs])
                lo = np.array([r[f"{m}_ci_low"] for r in rs])
                hi = np.array([r[f"{m}_ci_high"] for r in rs])
                cnn = rs[0]["cnn"]
                ax.plot(n, mean, marker="o", ms=4, lw=2 if cnn else 1.2, ls="-" if cnn else "--", c=colours[model],
                        label=_label(model))
                ax.fill_between(n, lo, hi, color=colours[model],
                                alpha=0.15 if cnn else 0.07, lw=0)
            key = f"ceiling_{m}"
            cn = np.array([c["n_outfits"] for c in ceil])
            cv = np.array([c[key] for c in ceil], dtype=float)
            if np.isfinite(cv).any():
                ax.plot(cn, cv, c="black", lw=1.5, label="noise ceiling (Bayes)")
            ax.axhline(0.5, c="grey", ls=":", lw=1, label="chance level")
            ax.axvline(ORIGINAL_N, c="#d62728", ls="-.", lw=1, alpha=0.7, label=f"original study n={ORIGINAL_N}")
            ax.set_xscale("log")
            ax.set_xticks(sorted(cn), [str(v) for v in sorted(cn)])
            ax.minorticks_off()
            ax.set(xlabel="outfits (n)", ylabel=title, ylim=(0.0, 1.02),
                   title=f"{title} vs n ({panel}; 95% corrected t, logit scale)")
            ax.title.set_fontsize(9)
            ax.grid(alpha=0.3)
    axes[0][1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    return _png(fig)


def _power_figure(report: SweepReport) -> bytes:
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    colours = _colours(list(dict.fromkeys(k.split("|")[1] for k in report.power_curves)))
    styles = ["-", "--", ":", "-."]
    panels = list(dict.fromkeys(k.split("|")[0] for k in report.power_curves))
    for key, c in report.power_curves.items():
        panel, model = key.split("|")
        ls = styles[panels.index(panel) % len(styles)]
        label = _label(model) + (f" ({panel})" if len(panels) > 1 else "")
        ax.plot(c["n"], c["power"], c=colours[model], ls=ls, lw=1.8, label=label)
    ax.axhline(TARGET_POWER, c="black", ls=":", lw=1, label=f"{TARGET_POWER:.0%} power")
    ax.axvline(ORIGINAL_N, c="#d62728", ls="-.", lw=1, alpha=0.7, label=f"original study n={ORIGINAL_N}")
    ax.set_xscale("log")
    ax.set(xlabel="outfits (n)", ylabel="power", ylim=(0, 1.02),
           title=f"Power of CNN − chance ({report.header['primary_metric']}), α={ALPHA}, "
                 f"{report.header['protocol'].split(' (')[0]}\nline: model of the curve (gap and power-law variance)")
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _png(fig)


def _raters_figure(report: SweepReport) -> bytes:
    ks = sorted({c["n_raters"] for c in report.ceilings}, key=_num)
    ss = sorted({c["sigma"] for c in report.ceilings}, key=_num)
    n_max = max(c["n_outfits"] for c in report.ceilings)
    models = list(dict.fromkeys(r["model"] for r in report.rows if r["n_outfits"] == n_max))
    panels = [("ceiling", "Noise ceiling (Bayes accuracy)")] + [(m, _label(m)) for m in models]
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig = Figure(figsize=(3.6 * cols, 3.0 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    for ax, (name, title) in zip(axes, panels):
        mat = np.full((len(ks), len(ss)), np.nan)
        for i, kv in enumerate(ks):
            for j, sv in enumerate(ss):
                if name == "ceiling":
                    v = [c["ceiling_accuracy"] for c in report.ceilings
                         if (c["n_raters"], c["sigma"], c["n_outfits"]) == (kv, sv, n_max)]
                else:
                    v = [r["accuracy_mean"] for r in report.rows
                         if (r["n_raters"], r["sigma"], r["n_outfits"], r["model"]) == (kv, sv, n_max, name)]
                if v:
                    mat[i, j] = v[0]
        im = ax.imshow(mat, vmin=0.4, vmax=1.0, cmap="viridis", aspect="auto")
        for i in range(len(ks)):
            for j in range(len(ss)):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=8,
                            color="white" if mat[i, j] < 0.75 else "black")
        ax.set_xticks(range(len(ss)), [f"σ={s}" for s in ss], fontsize=8)
        ax.set_yticks(range(len(ks)), [f"K={k}" for k in ks], fontsize=8)
        ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=list(axes[:len(panels)]), shrink=0.8, label="accuracy")
    fig.suptitle(f"Accuracy by rater panel (K raters × rater noise σ), n={n_max} outfits, CV means", fontsize=10)
    return _png(fig)


def _num(v):
    try:
        return (0, float(v))
    except (TypeError, ValueError):
        return (1, str(v))


# -- text -----------------------------------------------------------------------------------------------
def _f(x: float, d: int = 3) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:.{d}f}"


def _ci(r: dict, m: str) -> str:
    if not math.isfinite(r[f"{m}_ci_low"]):
        return _f(r[f"{m}_mean"])
    return f"{_f(r[f'{m}_mean'])} [{_f(r[f'{m}_ci_low'])}, {_f(r[f'{m}_ci_high'])}]"


def _p(p: float) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _n(x: float) -> str:
    return f"{x:.0f}" if math.isfinite(x) else "> 20000"


def _n_interval(row: dict) -> str:
    lo, hi = row.get("needed_n_ci_low", math.nan), row.get("needed_n_ci_high", math.nan)
    return f"[{_n(lo)}, {_n(hi)}]" if not (math.isnan(lo) or math.isnan(hi)) else ""


def power_sentences(report: SweepReport) -> list[str]:
    out = []
    metric = "AUC" if report.header["primary_metric"] == "roc_auc" else "accuracy"
    for row in report.power:
        if "needed_n" not in row:
            continue
        where = f" ({row['panel']})" if len({r["panel"] for r in report.power}) > 1 else ""
        if row["needed_n"] is None and row.get("b", 0.0) < 0:
            out.append(f"{_label(row['model'])}{where}: the modelled CNN − chance {metric} gap shrinks as n grows "
                       f"({_f(row['gap_at_40'])} at n = {ORIGINAL_N}, {_f(row['a'])} at large n), so no number of "
                       "outfits is modelled to reach 80% power; the measured sizes are in the table.")
        elif row["needed_n"] is None:
            out.append(f"{_label(row['model'])}{where}: the modelled CNN − chance {metric} gap ({_f(row['gap_at_40'])} "
                       f"at n = {ORIGINAL_N}, {_f(row['a'])} at large n) never reaches {TARGET_POWER:.0%} power up to "
                       f"n = 20,000 outfits (power at n = {ORIGINAL_N}: {_f(row['power_at_40'], 2)}).")
        else:
            out.append(f"{_label(row['model'])}{where}: a CNN − chance {metric} gap of {_f(row['gap_at_needed'])} "
                       f"needs n ≈ {row['needed_n']} outfits (95% bootstrap {_n_interval(row)}) for "
                       f"{TARGET_POWER:.0%} power at α = {ALPHA} "
                       f"({row['k']}×{row['r']} CV); at the original n = {ORIGINAL_N} the modelled gap is "
                       f"{_f(row['gap_at_40'])} and the power {_f(row['power_at_40'], 2)}.")
    return out


def render_markdown(report: SweepReport) -> str:
    h = report.header
    lines = [f"# Sweep report — {h['run_name']}", "",
             f"Sweep run `{report.run_id}` ({h['status']}), {h['n_points']} of {h['n_points_planned']} points, "
             f"models: {', '.join(h['archs_run']) or 'baselines only'} + baselines. Generator: "
             f"`{json.dumps(h['generator'])}`; nested class-balanced subsets of one pool per rater panel. "
             f"Protocol: {h['protocol']}, repeats by size {json.dumps(h['repeats_by_size'])}; {h['tuning']}. "
             f"Wall time {_f(h['wall_seconds'], 0)} s.", ""]
    for arch, w in sorted(h["weights"].items()):
        lines.append(f"- weights {arch}: {w}")
    lines.append("")
    if "learning_curve" in report.figures:
        lines += ["## Learning curves", "", "![learning curves](learning_curve.png)", ""]
    lines += ["## Table", "",
              "| Panel | n | Model | Folds | Accuracy | ROC-AUC | Ceiling acc. | Ceiling AUC | "
              f"gap vs chance ({h['primary_metric']}) | p |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    ceil = {c["key"]: c for c in report.ceilings}
    for r in report.rows:
        c = ceil[r["key"]]
        gap = (f"{r['gap']:+.3f} [{r['gap_ci_low']:+.3f}, {r['gap_ci_high']:+.3f}]" if _finite(r.get("gap_ci_low"))
               else f"{r['gap']:+.3f}" + (" (not testable)" if "not testable" in (r.get("note") or "") else ""))
        lines.append(f"| K={r['n_raters']}, σ={r['sigma']} | {r['n_outfits']}{' (original)' if r['n_outfits'] == ORIGINAL_N else ''} "
                     f"| {_label(r['model'])} | {r['n_folds']} | {_ci(r, 'accuracy')} | {_ci(r, 'roc_auc')} | "
                     f"{_f(c['ceiling_accuracy'])} | {_f(c['ceiling_roc_auc'])} | {gap} | {_p(r['p'])} |")
    lines += ["", f"Intervals (95%, per size): {INTERVAL_NOTE}. p: corrected one-sample t-test of the per-fold "
              "primary metric against the chance level 0.5 (unadjusted).", ""]
    if report.power:
        lines += ["## Power: how many outfits to tell a CNN from chance", ""]
        if "power" in report.figures:
            lines += ["![power](power.png)", ""]
        lines += ["| Panel | Model | modelled gap at n=40 | modelled power at n=40 (original) | n for 80% power "
                  "[95% bootstrap] | gap there | fold variance β | measured fold variance (model) at n |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in report.power:
            meas = ", ".join(f"{m['n_outfits']}: {_f(m['fold_var'], 4)} ({_f(m.get('model_var', math.nan), 4)})"
                             for m in row["measured"])
            needed = row.get("needed_n")
            lines.append(f"| {row['panel']} | {_label(row['model'])} | {_f(row.get('gap_at_40', math.nan))} | "
                         f"{_f(row.get('power_at_40', math.nan), 2)} | "
                         f"{needed if needed else '> 20000'} {_n_interval(row)} | "
                         f"{_f(row.get('gap_at_needed', math.nan))} | {_f(row.get('beta', math.nan), 2)} | {meas} |")
        lines += ["", *[f"- {s}" for s in power_sentences(report)], "",
                  "Method: " + " ".join(pw.__doc__.strip().split()), ""]
    if "raters" in report.figures:
        lines += ["## Rater panels", "", "![rater panels](raters.png)", ""]
    return "\n".join(lines) + "\n"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_outputs(report: SweepReport, out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"md": out_dir / "sweep.md", "json": out_dir / "sweep.json"}
    paths["md"].write_text(render_markdown(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(report.as_json(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for name, png in report.figures.items():
        paths[name] = out_dir / f"{name}.png"
        paths[name].write_bytes(png)
    return paths


def generate_sweep_report(run_id: str, out_dir: Path | None = None, *, log: bool = True,
                          tracking_uri: str | None = None) -> tuple[SweepReport, dict[str, Path]]:
    record = load_sweep(run_id, uri=tracking_uri)
    report = build_sweep_report(record)
    paths = write_outputs(report, out_dir or Path("reports") / run_id)
    if log:
        record.log_files(paths.values(), artifact_path="report")
    return report, paths
