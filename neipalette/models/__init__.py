"""CNN models: backbone registry, image views, the embedding cache, training loops, the estimator and its
saved form. May import `neipalette.data`, `errors`, `imaging`, `seeding` and `metrics`."""
