"""Datasets: the format and its validation, samples per input mode, the synthetic generator and its garments,
the DeepFashion2 importer, ratings and the labelling page. May import `neipalette.errors`, `seeding`,
`evaluation` and `colour`."""
