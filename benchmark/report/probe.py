"""The report's feature-probe section: reads the parent's `feature_probe.json` (written by the runner, see
`benchmark.feature_probe`), lays it out as a table and says in one sentence per network what its features keep
of each garment's colour and pattern, and so what a head on them can see."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

from benchmark.report.constants import _cnns
from benchmark.report.data import Report
from benchmark.report.format import _arch
from benchmark.report.tables import _Table
from benchmark.tracking.read import BenchmarkRecord

ARTIFACT = "feature_probe.json"
COLUMNS = (("L", "L*"), ("a", "a*"), ("b", "b*"), ("pattern", "pattern"))
WEAK = 0.5  # below this R² a linear head sees the coordinate only dimly
NOTHING = 0.05  # below this (R² can be negative out of fold) nothing of it is readable
WHAT = {"L": "lightness", "a": "hue (green–red)", "b": "hue (blue–yellow)"}


def load_feature_probe(record: BenchmarkRecord) -> dict | None:
    """The parent's feature_probe.json, or None (older runs, an incomplete benchmark, a failed probe)."""
    tmp = Path(tempfile.mkdtemp(prefix="neipalette-probe-"))
    try:
        path = record.download_artifact(record.parent.run_id, ARTIFACT, tmp)
        if path is None:
            return None
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) and isinstance(data.get("r2"), dict) else None
    except (OSError, ValueError):
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _models(probe: dict) -> list[str]:
    cnns = _cnns(probe["r2"])
    return cnns + [m for m in probe["r2"] if m not in cnns]


def _has_truth(probe: dict) -> bool:
    return any(k.startswith("true_") for v in probe["r2"].values() for k in v)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _r2(x) -> str:
    return f"{x:.2f}" if _finite(x) else "n/a"


def probe_table(report: Report) -> _Table:
    probe = report.feature_probe or {"r2": {}}
    truth = _has_truth(probe)
    headers = ["Features", "dim"] + [f"R² {label}" for _, label in COLUMNS]
    if truth:
        headers += [f"R² true {label}" for _, label in COLUMNS]
    rows = []
    for m in _models(probe):
        r = probe["r2"][m]
        row = [_arch(m), str(probe.get("dims", {}).get(m, "?"))] + [_r2(r.get(k)) for k, _ in COLUMNS]
        if truth:
            row += [_r2(r.get(f"true_{k}")) for k, _ in COLUMNS]
        rows.append(row)
    notes = [f"Each garment (n = {probe.get('n_garments', '?')}) is one item: {probe.get('method', '')}."]
    notes += [f"{_arch(m)} not probed: {why}." for m, why in probe.get("skipped", {}).items()]
    return _Table(headers, rows, notes)


def probe_sentences(report: Report) -> list[str]:
    """One sentence per network: its weakest colour coordinate (true colour where known) and what that means."""
    probe = report.feature_probe
    if not probe:
        return []
    out = []
    for m in _cnns(probe["r2"]):
        r = probe["r2"][m]
        prefix = "true_" if any(f"true_{k}" in r for k in WHAT) else ""
        values = {k: r.get(f"{prefix}{k}", math.nan) for k in WHAT}
        finite = {k: v for k, v in values.items() if _finite(v)}
        if not finite:
            continue
        weakest = min(finite, key=lambda k: finite[k])
        which = "true" if prefix else "extracted"
        listed = ", ".join(f"{k}* {_r2(v)}" for k, v in values.items())
        pattern = r.get(f"{prefix}pattern", math.nan)
        tail = f"; pattern R² {_r2(pattern)}" if _finite(pattern) else ""
        if finite[weakest] < NOTHING:
            out.append(f"{_arch(m)}'s features keep nothing of the garments' {which} {weakest}* ({listed}{tail}): "
                       f"a linear head on them cannot see {WHAT[weakest]}, so it cannot learn colour harmony from it.")
        elif finite[weakest] < WEAK:
            out.append(f"{_arch(m)}'s features keep R² {_r2(finite[weakest])} of the garments' {which} {weakest}* "
                       f"({listed}{tail}): a linear head on them cannot see {WHAT[weakest]} well, so it cannot "
                       "learn colour harmony from it.")
        else:
            out.append(f"{_arch(m)}'s features keep every {which} colour coordinate (R² ≥ {_r2(finite[weakest])}: "
                       f"{listed}{tail}): its distance to the ceiling is not lost colour.")
    return out
