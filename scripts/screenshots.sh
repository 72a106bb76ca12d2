#!/usr/bin/env bash
# Re-shoot the browser checks kept in docs/:
#   docs/mlflow-compare-summary-runs.png      MLflow "Compare" of the cv summary runs (accuracy rows)
#   docs/mlflow-compare-summary-runs-roc.png  same page, metrics table scrolled to the roc_auc rows
#   docs/report-html.png                      report.html opened offline (file://, network blocked)
#
# Usage: scripts/screenshots.sh STORE_DIR REPORT_HTML [OUT_DIR]
#   STORE_DIR    folder of a benchmark's MLflow store: holds mlflow.db (and mlruns/);
#                the UI is started with this as cwd so relative artifact paths resolve
#   REPORT_HTML  the run's report.html
#   OUT_DIR      where the PNGs go (default: docs/ of this checkout)
# e.g. scripts/screenshots.sh /tmp/def2 /tmp/def2/report/report.html
#
# Needs: Debian chromium (/usr/bin/chromium) and the Python playwright package
# (driver only; it is pointed at /usr/bin/chromium, never `playwright install`):
#   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
#   pip install playwright
# Starts `mlflow ui` on 127.0.0.1 (a free port) in its own process group and
# stops that group again on exit; Chromium is started and closed by Playwright.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,19p' "$0"; exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
STORE="$(cd "$1" && pwd)"
REPORT="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"
OUT="${3:-$HERE/../docs}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

[ -f "$STORE/mlflow.db" ] || { echo "no $STORE/mlflow.db" >&2; exit 2; }
[ -f "$REPORT" ] || { echo "no $REPORT" >&2; exit 2; }
. "$HERE/mlflow_ui_up.sh"  # checks, mlflow ui on $STORE, URL; stopped on exit

python "$HERE/screenshots.py" --url "$URL" --report "$REPORT" --out "$OUT" --chromium "$CHROMIUM"
