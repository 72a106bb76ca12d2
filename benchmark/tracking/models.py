"""Models in MLflow: a predictor saved as a pyfunc logged model of a fold or final run, and final models
registered under `neipalette-<arch>` with the benchmark's alias."""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

import neipalette
from benchmark.tracking.claims import elect
from benchmark.tracking.lineage import DatasetRef
from benchmark.tracking.names import TAG, model_alias, registered_model_name

log = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")

_REQUIREMENTS = ("torch", "torchvision", "scikit-learn", "scikit-image", "pandas", "pillow", "numpy", "scipy")

def pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            out.append(name)
    return out


class ModelsMixin:
    """`Tracker`'s model methods (it provides `client`, `experiment_id`, `dataset` and `_requirements`)."""

    client: MlflowClient
    experiment_id: str
    dataset: DatasetRef | None
    _requirements: list[str]
    _log_dataset: Callable[[str, pd.DataFrame, str, str], None]  # LineageMixin's

    def _log_model(self, run_id: str, predictor, input_mode: str, *, include_backbone: bool) -> str:
        """Save the pyfunc model locally and log it as an MLflow 3 logged model of `run_id` (name `model`,
        so `runs:/<run id>/model` resolves too); returns its model id (`models:/<model id>`)."""
        from neipalette.models.persist import save_predictor

        cols = [ColSpec("string", "image")] if input_mode == "single" else [ColSpec("string", "top"),
                                                                             ColSpec("string", "bottom")]
        cols.append(ColSpec("string", "sample_id", required=False))  # names rows (chance scores key on it)
        signature = ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec("double")]))
        with tempfile.TemporaryDirectory() as d:
            save_predictor(predictor, Path(d, "predictor"), include_backbone=include_backbone)
            with warnings.catch_warnings():
                # the signature is explicit, so MLflow's advice to add an input example does not apply
                warnings.filterwarnings("ignore", message=r".*[Ii]nput example", category=UserWarning)
                mlflow.pyfunc.save_model(
                    path=str(Path(d, "model")), python_model=str(PYFUNC_CODE),
                    artifacts={"predictor": str(Path(d, "predictor"))},
                    code_paths=[str(Path(neipalette.__file__).parent)], pip_requirements=self._requirements,
                    signature=signature)
            model = self.client.create_logged_model(self.experiment_id, name="model", source_run_id=run_id,
                                                    model_type="pyfunc")
            try:
                self.client.log_model_artifacts(model.model_id, str(Path(d, "model")))
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.finalize_logged_model(model.model_id, "FAILED")
                raise
        self.client.finalize_logged_model(model.model_id, "READY")
        self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
        return model.model_id

    def claim_final(self, parent_id: str, arch: str, shard: str) -> str | None:
        """A RUNNING final run for `arch` that this worker is elected to fill, or None (another has it)."""
        def candidates():
            return [r for r in self.child_runs(parent_id, "final") if r.data.tags.get(f"{TAG}arch") == arch
                    and r.info.status in ("RUNNING", "FINISHED")]

        def create():
            tags = {"mlflow.parentRunId": parent_id, f"{TAG}role": "final", f"{TAG}arch": arch,
                    f"{TAG}shard": shard}
            return self.client.create_run(self.experiment_id, tags=tags, run_name=f"final-{arch}").info.run_id

        rid, created = elect(self.client, candidates, create)
        return rid if created else None

    def log_final(self, parent_id: str, arch: str, predictor, params: dict, input_mode: str,
                  run_id: str | None = None, benchmark_name: str | None = None) -> str:
        """Log the final model into `run_id` (a claim from `claim_final`) or a new run; ends it FINISHED.
        With `benchmark_name`, the model is also registered (`register_final`)."""
        if run_id is None:
            tags = {"mlflow.parentRunId": parent_id, f"{TAG}role": "final", f"{TAG}arch": arch}
            run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=f"final-{arch}").info.run_id
        rid = run_id
        try:
            self.client.log_batch(rid, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
            if self.dataset is not None:  # refit on every outfit
                self._log_dataset(rid, self.dataset.table, "train", self.dataset.digest)
            model_id = self._log_model(rid, predictor, input_mode, include_backbone=True)
            if benchmark_name is not None:
                self.register_final(arch, model_id, rid, parent_id, benchmark_name)
        except BaseException:
            self.client.set_terminated(rid, "FAILED")
            raise
        self.client.set_terminated(rid, "FINISHED")
        return rid

    def register_final(self, arch: str, model_id: str, run_id: str, parent_id: str, benchmark_name: str) -> str:
        """Register a final model as a new version of `neipalette-<arch>` and point the benchmark's alias
        (its config name, e.g. `default`) at it; `models:/neipalette-<arch>/latest` is the newest version.
        Returns the version."""
        name = registered_model_name(arch)
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # exists already (or another worker's)
            self.client.create_registered_model(
                name, description=f"NeiPalette {arch} final models: P(harmonious) of a (top, bottom) image pair")
        tags = {f"{TAG}parent_run_id": parent_id, f"{TAG}benchmark_name": benchmark_name}
        if self.dataset is not None:
            tags[f"{TAG}dataset_digest"] = self.dataset.digest
        version = self.client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                                   model_id=model_id).version
        alias = model_alias(benchmark_name)
        self.client.set_registered_model_alias(name, alias, version)
        self.client.set_tag(run_id, f"{TAG}registered_model", f"models:/{name}@{alias}")
        log.info("registered %s version %s (alias %s)", name, version, alias)
        return str(version)
