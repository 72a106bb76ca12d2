"""Time `neipalette predict` as a user meets it: to its first line of output, and to the process's exit.

    python scripts/predict_latency.py [--repeat 3] -- --model runs:/<run-id>/model TOP.png BOTTOM.png

Runs `python -m neipalette predict <args>` (this interpreter) `--repeat` times and prints one JSON line per call:
`first_output_s` (the first stdout line, i.e. the result table), `exit_s` (the whole process, interpreter
teardown included) and the 1-minute load average at the end. Compare numbers only at similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def time_call(args: list[str]) -> dict[str, float | None]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "neipalette", "predict", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, bufsize=1)
    assert proc.stdout is not None
    first = None
    for _ in proc.stdout:
        if first is None:
            first = time.perf_counter() - t0
    rc = proc.wait()
    return {"first_output_s": None if first is None else round(first, 2),
            "exit_s": round(time.perf_counter() - t0, 2), "rc": rc, "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("predict_args", nargs=argparse.REMAINDER, help="after --: the arguments of neipalette predict")
    args = ap.parse_args()
    predict_args = args.predict_args[1:] if args.predict_args[:1] == ["--"] else args.predict_args
    if not predict_args:
        ap.error("give the predict arguments after --, e.g. -- --model runs:/<id>/model top.png bottom.png")
    for _ in range(args.repeat):
        print(json.dumps(time_call(predict_args)), flush=True)


if __name__ == "__main__":
    main()
