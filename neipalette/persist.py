"""The stable import path of predictor persistence: MLflow models logged by earlier versions load through
`neipalette.persist`. The implementation lives in `neipalette.models.persist`."""

from neipalette.models.persist import load_predictor, predict_frame, samples_from_frame, save_predictor

__all__ = ["load_predictor", "predict_frame", "samples_from_frame", "save_predictor"]
