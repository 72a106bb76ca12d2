"""Dataset lineage: the benchmark's dataset, and each fold's train and test parts, as MLflow dataset inputs of
the parent, fold and final runs; the machine and git commit as the parent's source tags."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import mlflow.data
import pandas as pd
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.entities import Dataset as MlflowDataset
from mlflow.entities import DatasetInput, InputTag
from mlflow.tracking import MlflowClient

from benchmark.tracking.claims import retry
from benchmark.tracking.names import TAG

@dataclass(frozen=True)
class DatasetRef:
    """The benchmark's dataset as MLflow lineage: `outfits.csv` rows, its folder and its content hash."""

    name: str
    digest: str  # the dataset's content hash (neipalette.data.dataset.dataset_content_hash)
    source: str  # the dataset folder
    table: pd.DataFrame  # outfits.csv as read: outfit_id, top, bottom, label (+ group)

def _subset_digest(digest: str, outfit_ids: Sequence[str]) -> str:
    """Digest of a part of the dataset: the whole dataset's content hash and which outfits are in it."""
    h = hashlib.sha256(digest.encode())
    for i in sorted(str(x) for x in outfit_ids):
        h.update(b"\0" + i.encode())
    return h.hexdigest()[:16]


class LineageMixin:
    """`Tracker`'s lineage methods (it provides `client` and `dataset`)."""

    client: MlflowClient
    dataset: DatasetRef | None

    # ---- lineage ------------------------------------------------------------------------------------
    def use_dataset(self, dataset: DatasetRef) -> None:
        """The dataset this benchmark reads: logged as an input of the parent, fold and final runs."""
        self.dataset = dataset

    def record_lineage(self, parent_id: str, *, git_commit: str | None, git_branch: str | None, git_dirty: bool,
                       environment: dict[str, str]) -> None:
        """On the parent: the dataset as an MLflow input (UI: Datasets), the git commit as MLflow's own
        source tags (UI: Version) and the machine it ran on (`neipalette.env.*`)."""
        tags = {f"{TAG}git_dirty": str(git_dirty).lower()}
        if git_commit:
            tags["mlflow.source.git.commit"] = git_commit
        if git_branch:
            tags["mlflow.source.git.branch"] = git_branch
        tags.update({f"{TAG}env.{k}": str(v)[:5000] for k, v in environment.items()})
        for key, value in tags.items():
            retry(lambda k=key, v=value: self.client.set_tag(parent_id, k, v))
        if self.dataset is not None:
            self._log_dataset(parent_id, self.dataset.table, "benchmark", self.dataset.digest)

    def log_fold_inputs(self, run_id: str, train_ids: Sequence[str], test_ids: Sequence[str]) -> None:
        """A fold run's train and test parts as datasets derived from the benchmark's (contexts train/test;
        tag `neipalette.dataset_digest` names the whole dataset's digest)."""
        if self.dataset is None:
            return
        self.client.set_tag(run_id, f"{TAG}dataset_digest", self.dataset.digest)
        self.client.log_inputs(run_id, [  # one call, one store transaction for both parts
            self._dataset_input(self._subset(ids), context, _subset_digest(self.dataset.digest, ids))
            for ids, context in ((train_ids, "train"), (test_ids, "test"))])

    def _subset(self, outfit_ids: Sequence[str]) -> pd.DataFrame:
        table = self.dataset.table
        return table[table["outfit_id"].astype(str).isin({str(i) for i in outfit_ids})]

    def _log_dataset(self, run_id: str, table: pd.DataFrame, context: str, digest: str) -> None:
        self.client.log_inputs(run_id, [self._dataset_input(table, context, digest)])

    def _dataset_input(self, table: pd.DataFrame, context: str, digest: str) -> DatasetInput:
        """`table` as an MLflow dataset input (`mlflow.data.from_pandas`: schema and profile as MLflow computes
        them; our content digest; the dataset folder as its local source)."""
        ref = self.dataset
        with warnings.catch_warnings():  # the advice to declare integer columns as doubles is for model schemas
            warnings.filterwarnings("ignore", message=r"Hint: Inferred schema contains integer", category=UserWarning)
            dataset = mlflow.data.from_pandas(table, source=LocalArtifactDatasetSource(ref.source), name=ref.name,
                                              digest=digest)
        return DatasetInput(MlflowDataset(**dataset.to_dict()), [InputTag("mlflow.data.context", context)])
