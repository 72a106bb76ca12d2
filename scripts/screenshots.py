"""Browser check + screenshots for the MLflow compare view and report.html.

Driven by scripts/screenshots.sh, which starts `mlflow ui` and stops it again.
Uses headless Debian Chromium (/usr/bin/chromium) through the Python
`playwright` package; no `playwright install` (no browser download).

1. Looks up the summary runs (tag neipalette.role=summary, protocol cv) via
   the running tracking server's REST API, opens MLflow's compare view for
   them (#/compare-runs?runs=[...]&experiments=[...]), reads the metrics
   table out of the rendered page and checks that accuracy/roc_auc
   *_mean, *_ci_low and *_ci_high are shown for every run, with the values
   the server returns.  Screenshots: <out>/mlflow-compare-summary-runs.png
   (top of the metrics table: accuracy rows) and
   <out>/mlflow-compare-summary-runs-roc.png (table scrolled to roc_auc rows).
2. Opens report.html from file:// with every http(s) request blocked, checks
   that nothing was fetched from the network, that all figures decoded and
   that tables are present; full-page screenshot -> <out>/report-html.png.

Exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import urllib.parse

from mlflow.tracking import MlflowClient
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHECKED = [
    f"{m}_{s}" for m in ("accuracy", "roc_auc") for s in ("mean", "ci_low", "ci_high")
]
ARCH_ORDER = ["resnet18", "efficientnet_b0"]  # CNNs first, then baselines


def summary_runs(url: str, experiment: str, protocol: str):
    client = MlflowClient(tracking_uri=url)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        sys.exit(f"experiment {experiment!r} not found on {url}")
    runs = client.search_runs(
        [exp.experiment_id], "tags.`neipalette.role` = 'summary'", max_results=1000
    )
    runs = [r for r in runs if r.data.tags.get("neipalette.protocol") == protocol]
    if not runs:
        sys.exit(f"no summary runs with neipalette.protocol={protocol!r}")

    def key(r):
        arch = r.data.tags.get("neipalette.arch", r.info.run_name or "")
        return (ARCH_ORDER.index(arch) if arch in ARCH_ORDER else len(ARCH_ORDER), arch)

    return exp.experiment_id, sorted(runs, key=key)


def read_metric_grid(pg) -> dict[str, list[str]]:
    """Rows currently rendered in the (virtualised) metrics table."""
    return pg.evaluate(
        """() => {
          const sec = [...document.querySelectorAll('.du-bois-light-collapse-item')]
            .find(s => s.querySelector('.du-bois-light-collapse-header')?.innerText.trim() === 'Metrics');
          const grids = [...sec.querySelectorAll('.ReactVirtualized__Grid')];
          const cells = g => [...g.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer > div')]
            .map(c => ({top: parseFloat(c.style.top), left: parseFloat(c.style.left), text: c.innerText.trim()}));
          const names = {}; for (const c of cells(grids[0])) names[c.top] = c.text;
          const rows = {};
          for (const c of cells(grids[1])) {
            if (!(c.top in names)) continue;
            (rows[names[c.top]] ||= []).push([c.left, c.text]);
          }
          const out = {};
          for (const [k, v] of Object.entries(rows)) out[k] = v.sort((a, b) => a[0] - b[0]).map(x => x[1]);
          return out;
        }"""
    )


def close_enough(shown: str, value: float) -> bool:
    try:
        d = float(shown)
    except ValueError:
        return False
    return abs(d - value) <= 5e-3 * max(1.0, abs(value)) + 1e-9


def shoot_compare(ctx, url, exp_id, runs, out: pathlib.Path) -> list[str]:
    ids = [r.info.run_id for r in runs]
    compact = dict(separators=(",", ":"))
    compare = f"{url}/#/compare-runs?runs={json.dumps(ids, **compact)}&experiments={json.dumps([exp_id])}"
    print("compare URL:", compare)
    pg = ctx.new_page()
    pg.goto(compare)
    pg.wait_for_selector("text=Run details", timeout=90_000)
    pg.wait_for_selector(".ReactVirtualized__Grid", timeout=90_000)
    pg.wait_for_timeout(2000)
    # Tidy the view: close the assistant side panel (if shown), fold the
    # plots and the parameter table so the metrics table sits on screen.
    close = pg.get_by_role("button", name="Close")
    if close.count() and close.first.is_visible():
        close.first.click()
    pg.get_by_text("Visualizations", exact=True).first.click()
    pg.get_by_text("Parameters", exact=True).first.click()
    pg.wait_for_timeout(1000)
    metrics_hdr = pg.get_by_text("Metrics", exact=True).first
    metrics_hdr.scroll_into_view_if_needed()
    pg.wait_for_timeout(500)
    pg.screenshot(path=str(out / "mlflow-compare-summary-runs.png"))
    seen = read_metric_grid(pg)

    # Scroll the metrics table itself (a virtualised 300 px box) to its end,
    # where the roc_auc rows are.  MLflow 3.17 syncs the metric-name column
    # to the value grid one scroll event late, so set both explicitly and
    # make sure they agree before the shot.
    grids = """() => {
      const sec = [...document.querySelectorAll('.du-bois-light-collapse-item')]
        .find(s => s.querySelector('.du-bois-light-collapse-header')?.innerText.trim() === 'Metrics');
      return [...sec.querySelectorAll('.ReactVirtualized__Grid')];
    }"""
    pg.evaluate(f"() => {{ const g = ({grids})(); g[1].scrollTop = g[1].scrollHeight; }}")
    pg.wait_for_timeout(700)
    pg.evaluate(f"() => {{ const g = ({grids})(); g[0].scrollTop = g[1].scrollTop; }}")
    pg.wait_for_timeout(700)
    tops = pg.evaluate(f"() => ({grids})().map(g => g.scrollTop)")
    if tops[0] != tops[1]:
        print(f"warning: metric names and values scrolled apart {tops}")
    pg.screenshot(path=str(out / "mlflow-compare-summary-runs-roc.png"))
    seen.update(read_metric_grid(pg))
    pg.close()

    problems = []
    names = [r.data.tags.get("neipalette.arch", r.info.run_name) for r in runs]
    print(f"\nmetrics table as rendered (columns: {', '.join(names)})")
    for m in CHECKED:
        shown = seen.get(m)
        print(f"  {m:18s} {shown}")
        if shown is None:
            problems.append(f"row {m} not shown in the compare view")
            continue
        if len(shown) != len(runs):
            problems.append(f"row {m}: {len(shown)} values for {len(runs)} runs")
            continue
        for r, s in zip(runs, shown):
            v = r.data.metrics.get(m)
            if v is None or not close_enough(s, v):
                problems.append(f"{m} for {r.info.run_name}: page {s!r}, server {v!r}")
    return problems


def shoot_report(ctx, report: pathlib.Path, out: pathlib.Path) -> list[str]:
    blocked: list[str] = []

    def guard(route):
        u = route.request.url
        if urllib.parse.urlsplit(u).scheme in ("file", "data", "blob", "about"):
            route.continue_()
        else:
            blocked.append(u)
            route.abort()

    pg = ctx.new_page()
    pg.route("**/*", guard)
    pg.goto(report.resolve().as_uri(), wait_until="load")
    pg.wait_for_timeout(1000)
    info = pg.evaluate(
        """() => ({
          tables: document.querySelectorAll('table').length,
          rows: document.querySelectorAll('table tr').length,
          imgs: [...document.images].map(i => [i.alt.slice(0, 60), i.naturalWidth, i.naturalHeight]),
          height: document.documentElement.scrollHeight,
        })"""
    )
    pg.screenshot(path=str(out / "report-html.png"), full_page=True)
    pg.close()
    print(f"\nreport.html: {info['tables']} tables ({info['rows']} rows), "
          f"page height {info['height']} px, figures:")
    for alt, w, h in info["imgs"]:
        print(f"  {w}x{h}  {alt}")
    problems = []
    if blocked:
        problems.append(f"report.html asked the network for: {blocked}")
    if not info["tables"]:
        problems.append("report.html shows no table")
    if not info["imgs"] or any(w == 0 for _, w, _ in info["imgs"]):
        problems.append("report.html has missing or undecodable figures")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="running mlflow ui, e.g. http://127.0.0.1:5077")
    ap.add_argument("--report", required=True, type=pathlib.Path)
    ap.add_argument("--out", default="docs", type=pathlib.Path)
    ap.add_argument("--experiment", default="neipalette")
    ap.add_argument("--protocol", default="cv")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=1250)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)

    exp_id, runs = summary_runs(a.url, a.experiment, a.protocol)
    print("summary runs:", ", ".join(f"{r.info.run_name}={r.info.run_id}" for r in runs))
    with tempfile.TemporaryDirectory(prefix="neipalette-chromium-") as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path=a.chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": a.width, "height": a.height},
        )
        try:
            problems = shoot_compare(ctx, a.url.rstrip("/"), exp_id, runs, a.out)
            problems += shoot_report(ctx, a.report, a.out)
        finally:
            ctx.close()
    for name in ("mlflow-compare-summary-runs.png", "mlflow-compare-summary-runs-roc.png", "report-html.png"):
        print("wrote", a.out / name)
    if problems:
        print("\nFAILED:\n  " + "\n  ".join(problems))
        return 1
    print("\nOK: compare view shows *_mean/_ci_low/_ci_high for every summary run; report.html is offline-complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
