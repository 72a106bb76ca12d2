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
[ -x "$CHROMIUM" ] || { echo "no $CHROMIUM: apt-get install -y chromium" >&2; exit 2; }
python -c 'import playwright' 2>/dev/null || { echo "pip install playwright (no 'playwright install' needed)" >&2; exit 2; }

PORT="${PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
LOG="$(mktemp -t mlflow-ui.XXXXXX.log)"

# own session/process group, so the uvicorn workers and job runner go with it
( cd "$STORE" && exec setsid mlflow ui --backend-store-uri "sqlite:///$STORE/mlflow.db" \
    --host 127.0.0.1 --port "$PORT" --workers 1 ) >"$LOG" 2>&1 &
UI_PID=$!
stop_ui() {
  # TERM the whole group (mlflow ui, uvicorn, job runner, huey consumers),
  # give it up to 30 s to go, then KILL whatever of that group is left.
  kill -TERM -- "-$UI_PID" 2>/dev/null || true
  for _ in $(seq 60); do kill -0 -- "-$UI_PID" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$UI_PID" 2>/dev/null || true
  wait "$UI_PID" 2>/dev/null || true
  rm -f "$LOG"
}
trap stop_ui EXIT INT TERM

URL="http://127.0.0.1:$PORT"
for i in $(seq 120); do
  curl -fs -o /dev/null "$URL/health" && break
  kill -0 "$UI_PID" 2>/dev/null || { echo "mlflow ui exited:" >&2; cat "$LOG" >&2; exit 1; }
  sleep 1
  [ "$i" = 120 ] && { echo "mlflow ui did not answer on $URL" >&2; cat "$LOG" >&2; exit 1; }
done
echo "mlflow ui up on $URL (store $STORE)"

python "$HERE/ui_screenshots.py" --url "$URL" --out "$OUT" --chromium "$CHROMIUM"
