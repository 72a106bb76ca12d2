#!/usr/bin/env bash
# Re-shoot the issue-24 browser checks kept in docs/ (scripts/ui_screenshots.py):
#   docs/mlflow-experiment-sorted-by-metric.png  parent runs sorted by <arch>.roc_auc
#   docs/mlflow-model-card.png                   a registered version with its model card
#   docs/mlflow-fold-learning-curve.png          a tuned fold run: inner curve and train_loss by epoch
#
# Usage: scripts/ui_screenshots.sh STORE_DIR [OUT_DIR]
#   STORE_DIR    folder of a benchmark's MLflow store: holds mlflow.db (and mlruns/);
#                the UI is started with this as cwd so relative artifact paths resolve
#   OUT_DIR      where the PNGs go (default: docs/ of this checkout)
# e.g. scripts/ui_screenshots.sh /tmp/quick (two quick benchmarks: seeds 0 and 1)
#
# Needs: Debian chromium (/usr/bin/chromium) and the Python playwright package
# (driver only; it is pointed at /usr/bin/chromium, never `playwright install`):
#   apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
#   pip install playwright
# Starts `mlflow ui` on 127.0.0.1 (a free port) in its own process group and
# stops that group again on exit; Chromium is started and closed by Playwright.
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,17p' "$0"; exit 2
fi
HERE="$(cd "$(dirname "$0")" && pwd)"
STORE="$(cd "$1" && pwd)"
OUT="${2:-$HERE/../docs}"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

[ -f "$STORE/mlflow.db" ] || { echo "no $STORE/mlflow.db" >&2; exit 2; }
. "$HERE/mlflow_ui_up.sh"  # checks, mlflow ui on $STORE, URL; stopped on exit

python "$HERE/ui_screenshots.py" --url "$URL" --out "$OUT" --chromium "$CHROMIUM"
