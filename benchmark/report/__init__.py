"""The benchmark report: `model` (build_report) with `family`, `ceiling` and `verdicts` (what it says), `data`
(the Report), `constants` and `format`, `tables` and `render` (md/html/json), `figures`, `cli` (files, `python -m
benchmark.report`). May import `benchmark.stats`, `benchmark.tracking.read` and `neipalette`; nothing imports it
but its own CLI."""
