"""The benchmark report: `model` (what it says), `render` (md/html/json), `figures`, `cli` (files, `python -m
benchmark.report`). May import `benchmark.stats`, `benchmark.tracking.read` and `neipalette`; nothing imports it
but its own CLI."""
