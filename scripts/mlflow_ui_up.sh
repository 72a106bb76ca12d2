# Sourced by scripts/screenshots.sh and scripts/ui_screenshots.sh (set -euo pipefail there): checks chromium and
# playwright, starts `mlflow ui` on the store in $STORE (a free port, its own process group, stopped again on
# exit) and waits for it; sets URL. Needs STORE and CHROMIUM.
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
