"""Save and load fitted predictors (CNN heads, fine-tuned networks, baselines) as plain folders."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from neipalette.data.samples import Predictor, Sample

# torch comes in with neipalette.models.estimator: imported only for CNN predictors, so a baseline loads (and
# `neipalette predict` answers) without it.


def save_predictor(predictor: Predictor, path: Path, *, include_backbone: bool = False) -> None:
    """A folder `load_predictor` can read. CNN heads without the backbone rebuild it from the recorded weights."""
    from neipalette.models.estimator import CNNPredictor

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(predictor, CNNPredictor):
        predictor.save(path, include_backbone=include_backbone)
        return
    (path / "spec.json").write_text(json.dumps({"kind": "pickle", "class": type(predictor).__name__}))
    with open(path / "predictor.pkl", "wb") as fh:
        pickle.dump(predictor, fh)


# Modules that moved into a room: pickles written before the move name the old path.
_MOVED = {"neipalette.baselines": "neipalette.models.baselines"}


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        return super().find_class(_MOVED.get(module, module), name)


def load_predictor(path: Path) -> Predictor:
    path = Path(path)
    spec = json.loads((path / "spec.json").read_text())
    if spec["kind"] == "pickle":
        with open(path / "predictor.pkl", "rb") as fh:
            return _Unpickler(fh).load()
    from neipalette.models.estimator import load_cnn_predictor

    return load_cnn_predictor(path)


def samples_from_frame(frame: pd.DataFrame) -> list[Sample]:
    """Rows with `top` and `bottom` image paths (or one `image` column) as unlabelled samples.

    An optional `sample_id` column names the rows (the chance baseline's scores are keyed on it).
    """
    ids = [str(x) for x in frame["sample_id"]] if "sample_id" in frame.columns else [f"row{i}" for i in range(len(frame))]
    if {"top", "bottom"} <= set(frame.columns):
        return [Sample(sid, sid, (Path(t), Path(b)), -1) for sid, t, b in zip(ids, frame["top"], frame["bottom"])]
    if "image" in frame.columns:
        return [Sample(sid, sid, (Path(p),), -1) for sid, p in zip(ids, frame["image"])]
    raise ValueError("input needs columns top and bottom (image paths), or one column image")


def predict_frame(predictor: Predictor, frame: pd.DataFrame) -> np.ndarray:
    return predictor.predict_proba(samples_from_frame(frame))
