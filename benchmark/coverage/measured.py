"""The coverage table that ships in the repository (`measured.json`) and the rule for quoting a coverage run.

`python -m benchmark.coverage --ship` writes the file: the table (with Clopper-Pearson intervals and the
share of datasets where the logit method's variance floor replaced the sample variance), the settings,
the estimand, the git commit, the dataset count and the time it took. A report quotes a table only when
`refusal` finds nothing wrong with it for that report: never a `--quick` run, a run with fewer than
`MIN_DATASETS` datasets, another generator, dataset size or CV shape, or models the report did not run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

MEASURED = Path(__file__).with_name("measured.json")
MIN_DATASETS = 200
SCHEMA = 1


def load(path: Path | None = None) -> dict | None:
    """The shipped table (`MEASURED` unless given), or None when there is none."""
    path = Path(path if path is not None else MEASURED)
    return json.loads(path.read_text()) if path.is_file() else None


def refusal(measured: dict, *, generator: str, version: object, n_outfits: object, n_splits: object,
            n_repeats: object, input_mode: str = "pair") -> str | None:
    """Why `measured` must not be quoted for a cv report of this generator and shape; None when it may be."""
    s = measured.get("settings", {})
    if measured.get("quick"):
        return "it is a --quick run (a smoke test, not a measurement)"
    n = int(s.get("n_datasets") or 0)
    if n < MIN_DATASETS:
        return f"it has {n} datasets (fewer than {MIN_DATASETS})"
    if (str(s.get("generator")), str(s.get("generator_version"))) != (str(generator), str(version)):
        return f"it measured {s.get('generator')} v{s.get('generator_version')}, not {generator} v{version}"
    if str(s.get("n_outfits")) != str(n_outfits):
        return f"it measured datasets of {s.get('n_outfits')} outfits, not {n_outfits}"
    if (str(s.get("n_splits")), str(s.get("n_repeats"))) != (str(n_splits), str(n_repeats)):
        return (f"it measured {s.get('n_repeats')}×{s.get('n_splits')}-fold CV, not {n_repeats}×{n_splits}")
    if s.get("cnn") and input_mode != s["cnn"].get("input_mode", "pair"):
        return f"its CNN saw {s['cnn'].get('input_mode')} input, not {input_mode}"
    return None


def quotable_rows(measured: dict, models: Iterable[str]) -> list[dict]:
    """Rows of models the report ran, then difference rows of pairs it ran both of; a CNN row never (the
    study's head has a fixed learning rate and small images: another procedure than a report's tuned head)."""
    cnn = (measured.get("settings", {}).get("cnn") or {}).get("arch")
    wanted = set(models) - {cnn}
    rows = measured.get("coverage", [])
    means = [r for r in rows if not is_difference(r) and r["model"] in wanted]
    return means + [r for r in rows if is_difference(r) and {r["model_a"], r["model_b"]} <= wanted]


def is_difference(row: dict) -> bool:
    """Whether a coverage row is a paired difference a − b (else the mean of one model)."""
    return row.get("kind") == "difference"


def ship(summary: dict, *, commit: str | None, quick: bool, cpu_seconds: float | None,
         path: Path | None = None) -> Path:
    """Write the measured table (atomically) to `path`, `MEASURED` unless given."""
    path = Path(path if path is not None else MEASURED)
    doc = {"schema": SCHEMA, "commit": commit, "quick": bool(quick), "cpu_seconds": cpu_seconds, **summary}
    doc.pop("run_id", None)
    part = path.with_suffix(".json.tmp")
    part.write_text(json.dumps(doc, indent=1, sort_keys=True, allow_nan=True, default=str) + "\n")
    part.replace(path)
    return path
