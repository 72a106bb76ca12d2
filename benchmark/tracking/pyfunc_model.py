"""MLflow pyfunc model (models-from-code): scores outfits given as image files.

Input: a DataFrame with columns `top` and `bottom` (image paths), or `image` for single-image models.
Output: P(positive) per row.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model


class OutfitHarmonyModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from neipalette.persist import load_predictor

        self.predictor = load_predictor(context.artifacts["predictor"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[float]:
        from neipalette.persist import predict_frame

        return [float(p) for p in predict_frame(self.predictor, model_input)]


set_model(OutfitHarmonyModel())
