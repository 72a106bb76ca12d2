"""Split a py-spy profile of a benchmark run into phases; prints one JSON line (share of samples, and seconds).

    py-spy record -r 50 -f raw -o prof.txt -- python -m benchmark.run --config experiments/default.yaml
    python scripts/profile_split.py prof.txt --rate 50

A sample counts for the first phase (in the order below) that any frame of its stack matches.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter

import click

PHASES = (  # (phase, regex on a frame "function (file:line)")
    ("embedding (backbone forward)", r"_forward_chunks|embedding\.py.*forward"),
    ("optuna storage", r"optuna/storages"),
    ("per-epoch scoring", r"\bscore \(.*tuning\.py|rank_auc|predict_proba|probabilities"),
    ("head training", r"heads\.py|head_epochs|optim/adam|autograd|torch/_tensor\.py.*backward"),
    ("figures (matplotlib)", r"_roc_png|_optimization_history_png|matplotlib"),
    ("MLflow logging", r"tracking/write\.py|tracking/summary\.py|mlflow/"),
    ("optuna sampler/pruner", r"optuna/"),
    ("imports", r"_find_and_load"),
)


@click.command()
@click.argument("profile", type=click.Path(exists=True, dir_okay=False))
@click.option("--rate", type=float, default=50.0, show_default=True, help="py-spy's sampling rate (-r).")
def main(profile: str, rate: float) -> None:
    counts: Counter[str] = Counter()
    total = 0
    patterns = [(name, re.compile(rx)) for name, rx in PHASES]
    with open(profile) as f:
        for line in f:
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not n.isdigit():
                continue
            total += int(n)
            frames = stack.split(";")
            phase = next((name for name, rx in patterns if any(rx.search(fr) for fr in frames)), "other")
            counts[phase] += int(n)
    out = {name: {"share": round(c / total, 3), "s": round(c / rate, 1)} for name, c in counts.most_common()}
    click.echo(json.dumps({"samples": total, "seconds": round(total / rate, 1), "phases": out}))
    sys.exit(0)


if __name__ == "__main__":
    main()
