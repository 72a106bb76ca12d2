"""CNN models and the baselines beside them: architectures and the backbone registry, image views, the embedding
cache, training loops, the estimator, the baselines, saved predictors and `neipalette predict`'s inputs. May
import `neipalette.data`, `colour`, `errors`, `seeding` and `evaluation`."""
