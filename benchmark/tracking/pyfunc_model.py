"""MLflow pyfunc model (models-from-code): scores outfits given as image files.

Input: a DataFrame with columns `top` and `bottom` (image paths), or `image` for single-image models.
Output: P(positive) per row. A relative path that does not exist is looked up among the model's artifacts,
so the shipped input example (`examples/top.png`, `examples/bottom.png`) predicts wherever the model is.
"""

from __future__ import annotations

import os

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

IMAGE_COLUMNS = ("top", "bottom", "image")


class OutfitHarmonyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from neipalette.persist import load_predictor

        self.predictor = load_predictor(context.artifacts["predictor"])
        examples = context.artifacts.get("examples")
        self.artifacts_dir = os.path.dirname(examples) if examples else None

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[float]:
        from neipalette.persist import predict_frame

        return [float(p) for p in predict_frame(self.predictor, self._resolve(model_input))]

    def _resolve(self, frame: pd.DataFrame) -> pd.DataFrame:
        base = getattr(self, "artifacts_dir", None)  # models logged before the examples have none
        if base is None:
            return frame

        def path(p):
            p = str(p)
            shipped = os.path.join(base, p)
            return shipped if not os.path.isabs(p) and not os.path.exists(p) and os.path.exists(shipped) else p

        frame = frame.copy()
        for column in IMAGE_COLUMNS:
            if column in frame.columns:
                frame[column] = frame[column].map(path)
        return frame


set_model(OutfitHarmonyModel())
