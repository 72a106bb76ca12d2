"""What the report compares and how it names things: its settings (confidence, bootstrap size, alpha), the
models and protocols in report order with their labels, and the metrics of each table."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from neipalette.models.variants import model_label, split_model_name

CONFIDENCE = 0.95
N_BOOT = 2000
DEFAULT_BOOT_SEED = 0  # used when the parent has no `seed` param
BASELINE_ARCHS = ("chance", "colour_stats", "ou_luo", "colour_pattern")
COLOUR_BASELINES = ("colour_stats", "ou_luo", "colour_pattern")  # every one is in the family, declared by the config
BASELINES = BASELINE_ARCHS
ALPHA = 0.05
COVERAGE_GOAL = 0.93
# display order and names of the models the report knows; any other model (torchvision:..., timm:...) is shown
# under its own name, after the known networks and before the baselines
ARCH_ORDER = ("resnet18", "efficientnet_b0", "efficientnet_lite0", "chance", "colour_stats", "ou_luo",
              "colour_pattern")
_KNOWN_LABELS = {
    "resnet18": "ResNet18", "efficientnet_b0": "EfficientNet-B0", "efficientnet_lite0": "EfficientNet-Lite0",
    "chance": "Chance (stratified)",
    "colour_stats": "Colour stats (logistic)", "ou_luo": "Ou & Luo (2006)",
    "colour_pattern": "Colour + pattern (tuned logistic)",
}


class _ModelLabels(Mapping[str, str]):
    """Every model's display label: a known model's, a variant's ("EfficientNet-Lite0 + multiscale"), or the
    name itself; `.get(name, name)` and `[name]` never miss."""

    def __getitem__(self, name: str) -> str:
        return model_label(name, _KNOWN_LABELS)

    def __iter__(self) -> Iterator[str]:
        return iter(_KNOWN_LABELS)

    def __len__(self) -> int:
        return len(_KNOWN_LABELS)


ARCH_LABELS: Mapping[str, str] = _ModelLabels()
PROTOCOL_ORDER = ("cv", "seed_split")
PROTOCOL_LABELS = {"cv": "CV", "seed_split": "60/20 split"}
TABLE2 = (("accuracy", "Accuracy"), ("precision", "Precision"), ("recall", "Recall"), ("f1", "F1"),
          ("roc_auc", "ROC-AUC"))
CLASS_METRICS = {"positive": ("precision", "recall", "f1"),
                 "negative": ("precision_negative", "recall_negative", "f1_negative")}
COMPARED = ("accuracy", "roc_auc")
CEILING = "ceiling_accuracy"
CHANCE_LEVEL = "chance_level"  # the b side of a test against the known chance level
INTERVAL_METHOD = "bounded_logit_t"  # benchmark.stats.bounded_interval; its label in coverage runs
DIFFERENCE_METHOD = "bounded_fisher_z_t"  # benchmark.stats.bounded_difference; its label in coverage runs
_POINT_NOTE = "single split: point estimate only"


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    values = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    return [v for v in order if v in values] + sorted(v for v in values if v not in order)


def _cnns(archs) -> list[str]:
    """Every network in `archs` (not a baseline), in report order; a variant `<arch>+<option>` right after its
    arch."""
    nets = [a for a in dict.fromkeys(archs) if isinstance(a, str) and a not in BASELINE_ARCHS]
    bases = _ordered([split_model_name(a)[0] for a in nets], ARCH_ORDER)
    return sorted(nets, key=lambda a: (bases.index(split_model_name(a)[0]), a != split_model_name(a)[0], a))


def _arch_order(archs) -> list[str]:
    """Every model in `archs` in report order: the networks (known ones first), then the baselines."""
    archs = list(archs)
    return _cnns(archs) + [a for a in _ordered(archs, ARCH_ORDER) if a in BASELINE_ARCHS]
