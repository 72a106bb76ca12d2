"""Turns a `benchmark.report.model.Report` into text: markdown, self-contained HTML (inline CSS, figures as
data URIs) and JSON. The tables and header lines it lays out come from `benchmark.report.tables`.
"""

from __future__ import annotations

import base64
import html
import json

from benchmark.report.format import _arch
from benchmark.report.model import FIGURE_CAPTIONS, Report
from benchmark.report.probe import probe_sentences, probe_table
from benchmark.report.tables import (EDGE_MARK, _comparison_table, _coverage_table, _gap_table, _header_lines,
                                     _missing_table, _seed_table, _Table, _table2, _table3)

METHOD_NOTE = (
    "CV intervals (method note): for a [0, 1] metric, the Nadeau & Bengio corrected resampled t on the logit scale. "
    "With J finished folds, n_test/n_train items per fold and n = n_train + n_test, the fold mean m is moved half an "
    "item towards 1/2 (m* = (m·n + 0.5)/(n + 1), so folds all at 0 or 1 still have a finite logit), the fold "
    "variance is floored at the binomial m*(1 − m*)/n_test · n_train/(n − 1) a test fold has at least, and the "
    "interval is expit(logit(m*) ± t(J−1, 0.975)·sqrt((1/J + n_test/n_train)·var)/(m*(1 − m*))). It never leaves "
    "[0, 1], is asymmetric near the edges and is stretched to hold the fold mean when that is exactly 0 or 1; "
    f"{EDGE_MARK} marks a bound that rounds to 0.000 or 1.000. A difference d of two [0, 1] scores (model − model, "
    "model − chance level) is tested with the corrected t on the difference scale (p-values); its interval is the "
    "same corrected t on the Fisher-z scale, tanh(atanh(m*) ± t(J−1, 0.975)·se/(1 − m*²)) with m* = m·n/(n + 1) "
    "(atanh(d) = logit((d + 1)/2)/2), so it never leaves [−1, 1] and is the plain m ± t·se for small differences; "
    "these intervals are unadjusted (Holm adjusts the p-values only). Coverage (the header): the estimand is the "
    "expected score of the same procedure trained on n_train outfits and scored on a fresh outfit, with the rater "
    "panel and threshold that labelled this dataset held fixed; `python -m benchmark.coverage` measures how often "
    "each method's interval holds it on datasets drawn from that one panel-and-threshold process, with a "
    "Clopper–Pearson interval per cell, and the shipped table (benchmark/coverage/measured.json) is quoted only "
    "for this generator, size, CV shape and these models, never from a --quick run or fewer than 200 datasets.")


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
          ("p", METHOD_NOTE),
          ("h", 2, "Table 3 — per-class performance (mean [95% CI])"), ("table", _table3(report)),
          ("h", 2, "Paired comparisons (same folds)"), ("table", _comparison_table(report))]
    if report.ceiling_gaps:
        b += [("h", 2, "Distance to the noise ceiling"), ("table", _gap_table(report))]
    if report.feature_probe:
        b += [("h", 2, "Feature probe — what each model's features keep of a garment's colour and pattern"),
              ("table", probe_table(report)), ("list", probe_sentences(report))]
    if report.coverage and report.coverage["found"]:
        b += [("h", 2, "Measured interval coverage (python -m benchmark.coverage)"), ("table", _coverage_table(report))]
    if report.seed_split:
        b += [("h", 2, "The original 60/20 split (single-image input)"),
              ("p", "Point estimates as the original study reported them, with the intervals it did not report."),
              ("table", _seed_table(report))]
    if report.summary_runs_written:
        b += [("h", 2, "Summary runs written by this report"),
              ("list", [f"{_arch(s['arch'])} / {s['protocol']}: `{s['run_id']}`" for s in report.summary_runs_written])]
    b += _tuning_blocks(report)
    general = [name for name in report.figures if name != "tuning"]  # the tuning figure sits in its section
    if general:
        b.append(("h", 2, "Figures"))
        b += [("fig", name, FIGURE_CAPTIONS.get(name, name)) for name in general]
    if report.config_text:
        b += [("h", 2, "Appendix — resolved config (config.yaml)"), ("code", report.config_text)]
    return b


def _tuning_blocks(report: Report) -> list[tuple]:
    """Tuning: the chosen learning rate and epochs per fold and architecture; choices at the range's edge."""
    t = report.tuning
    if not t:
        return []
    rng = t["range"]
    edge = [f for f in t["folds"] if f["lr_edge"] or f["epochs_edge"]]
    b: list[tuple] = [("h", 2, "Tuning — chosen learning rate and epochs"),
                      ("p", f"Search range: learning rate {rng['lr_min']:.2g}–{rng['lr_max']:.2g} (log scale), epochs "
                            f"{rng['epochs_min']:.0f}–{rng['epochs_max']:.0f}. A choice is at the edge when the learning "
                            f"rate lies within {t['lr_edge_fraction']:.0%} of the log range from a bound or the epochs "
                            "equal a bound; each tuned fold run has the study's trials (`trials.csv`) and its "
                            "optimization history.")]
    if edge:
        b.append(("warn", f"{len(edge)} of {len(t['folds'])} tuned folds chose a value at the edge of the search range: "
                          "the best value may lie outside it; consider widening the range."))
    summary = _Table(["Model", "Protocol", "Folds", "Median learning rate", "Median epochs", "LR at edge",
                      "Epochs at edge"],
                     [[_arch(a["arch"]), a["protocol"], str(a["n_folds"]), f"{a['lr_median']:.3g}",
                       f"{a['epochs_median']:g}", str(a["n_lr_edge"]), str(a["n_epochs_edge"])] for a in t["per_arch"]])
    folds = _Table(["Model", "Protocol", "Repeat", "Fold", "Learning rate", "Epochs", "Edge"],
                   [[_arch(f["arch"]), f["protocol"], str(f["repeat"]), str(f["fold"]), f"{f['learning_rate']:.3g}",
                     str(f["epochs"]), ", ".join(f"{k} {v}" for k, v in (("lr", f["lr_edge"]), ("epochs", f["epochs_edge"]))
                                                 if v) or "—"] for f in t["folds"]])
    b += [("table", summary)]
    if "tuning" in report.figures:
        b.append(("fig", "tuning", FIGURE_CAPTIONS.get("tuning", "tuning")))
    b += [("table", folds)]
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
