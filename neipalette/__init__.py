"""NeiPalette: does a CNN judge outfit colour harmony better than chance on tiny datasets?

Layers, each importing only those before it: `errors`, `seeding`, `evaluation` (leaves) → `colour` → `data` →
`models` → `persist` (a thin alias of `models.persist`), `cli`. Nothing here imports `benchmark`.
"""

__version__ = "0.1.0"  # the one source: pyproject.toml reads it (setuptools dynamic version)
