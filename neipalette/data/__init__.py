"""Datasets: the format and its validation, samples per input mode, the synthetic generator and its garments,
the DeepFashion2 importer. May import `neipalette.errors`, `imaging`, `seeding`, `metrics` and `colour`."""
