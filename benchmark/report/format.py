"""How the report writes numbers: finite checks, fixed decimals, p-values, intervals, model labels, and the
JSON form of report.json (NaN as null)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.report.constants import ARCH_LABELS

# -- verdict --------------------------------------------------------------------------------------------
def _find(items: list[dict], **kw) -> dict | None:
    return next((i for i in items if all(i.get(k) == v for k, v in kw.items())), None)


def _finite(*xs) -> bool:
    return all(x is not None and isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def _isnull(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


# -- number formatting (the verdict's and figures'; reused by benchmark.report.render) ------------------
def _num(x) -> float:
    return float(x) if _finite(x) else math.nan


def _f(x, d: int = 3) -> str:
    return f"{x:.{d}f}" if _finite(x) else "n/a"


def _p(p) -> str:
    if not _finite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _ci(mean, lo, hi) -> str:
    if not _finite(mean):
        return "n/a"
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]" if _finite(lo, hi) else f"{mean:.3f} [n/a]"


def _balance(s: dict) -> str:
    """A single split's test-set class balance, e.g. "2 positive / 18 negative, 1 of 10 outfits positive";
    "" when not known."""
    pos, n = s.get("n_test_positive"), s.get("n_test")
    if pos is None or n is None or not _finite(n):
        return ""
    text = f"{pos} positive / {round(n) - pos} negative"
    outfits, n_outfits = s.get("n_test_positive_outfits"), s.get("n_test_outfits")
    return text + (f", {outfits} of {n_outfits} outfits positive" if outfits is not None and n_outfits else "")


def _arch(a: str) -> str:
    return ARCH_LABELS.get(a, a)


def _word(m: str) -> str:
    return {"accuracy": "accuracy", "roc_auc": "ROC-AUC"}.get(m, m)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if x is None or x is pd.NA:
        return None
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x
