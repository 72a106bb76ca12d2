"""Compare the fold metrics of two benchmark runs (e.g. before and after a refactor, same config and seed).

    python scripts/compare_metrics.py sqlite:///before/mlflow.db sqlite:///after/mlflow.db [--experiment neipalette]
        [--run-a ID] [--run-b ID] [--tol 0] [--exclude MODEL ...]

Takes the latest parent run of each store (or the given ones), pairs their fold runs by job key
(arch|protocol|repeat|fold) and prints: the number of fold runs and metric values compared, the largest absolute
difference (and where), whether run statuses and fold params are equal. Exit status 1 when anything differs by
more than --tol. `--exclude MODEL` leaves a model out of the comparison (its fold runs, summary runs and parent
metrics `MODEL.*`): e.g. after a change to that one model, to check that every other number stayed the same.
"""

from __future__ import annotations

import argparse
import math
import sys

from mlflow.tracking import MlflowClient

TAG = "neipalette."


def _parent(client: MlflowClient, experiment: str, run_id: str | None):
    if run_id:
        return client.get_run(run_id)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        sys.exit(f"no experiment {experiment!r} in {client.tracking_uri}")
    runs = client.search_runs([exp.experiment_id], f"tags.`{TAG}role` = 'parent'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        sys.exit(f"no benchmark parent run in {client.tracking_uri}")
    return runs[0]


def _folds(client: MlflowClient, parent) -> dict:
    flt = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.`{TAG}role` = 'fold'"
    runs = client.search_runs([parent.info.experiment_id], flt, max_results=50000)
    return {r.data.tags[f"{TAG}job_key"]: r for r in runs}


def _summary_metrics(client: MlflowClient, parent) -> dict[str, float]:
    """The parent's own metrics and each FINISHED summary run's, keyed `arch|protocol|metric`."""
    flt = f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and tags.`{TAG}role` = 'summary'"
    out = {f"parent|{k}": v for k, v in parent.data.metrics.items()}
    for r in client.search_runs([parent.info.experiment_id], flt, max_results=50000):
        if r.info.status == "FINISHED":
            key = f"{r.data.tags.get(f'{TAG}arch')}|{r.data.tags.get(f'{TAG}protocol')}"
            out.update({f"{key}|{m}": v for m, v in r.data.metrics.items()})
    return out


def _max_diff(a: dict[str, float], b: dict[str, float]) -> tuple[int, float, str, int]:
    n, worst, where, nan_mismatch = 0, 0.0, "", 0
    for k in sorted(set(a) & set(b)):
        n += 1
        if math.isnan(a[k]) or math.isnan(b[k]):
            nan_mismatch += math.isnan(a[k]) != math.isnan(b[k])
        elif abs(a[k] - b[k]) > worst:
            worst, where = abs(a[k] - b[k]), f"{k}: {a[k]!r} vs {b[k]!r}"
    return n, worst, where, nan_mismatch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("uri_a")
    ap.add_argument("uri_b")
    ap.add_argument("--experiment", default="neipalette")
    ap.add_argument("--run-a")
    ap.add_argument("--run-b")
    ap.add_argument("--tol", type=float, default=0.0)
    ap.add_argument("--exclude", action="append", default=[], metavar="MODEL",
                    help="leave this model out (repeatable)")
    args = ap.parse_args()
    excluded = set(args.exclude)

    def kept(key: str) -> bool:  # fold job keys and summary keys start with `model|`; parent metrics `parent|model.`
        model = key.split("|")[1].split(".")[0] if key.startswith("parent|") else key.split("|")[0]
        return model not in excluded

    ca, cb = MlflowClient(tracking_uri=args.uri_a), MlflowClient(tracking_uri=args.uri_b)
    pa, pb = _parent(ca, args.experiment, args.run_a), _parent(cb, args.experiment, args.run_b)
    fa, fb = ({k: r for k, r in _folds(c, p).items() if kept(k)} for c, p in ((ca, pa), (cb, pb)))
    print(f"parents: {pa.info.run_id} ({pa.info.status}) vs {pb.info.run_id} ({pb.info.status})")
    only = sorted(set(fa) ^ set(fb))
    n_values, worst, where, nan_mismatch, param_diffs, status_diffs, metric_set_diffs = 0, 0.0, "", 0, [], [], []
    for key in sorted(set(fa) & set(fb)):
        ra, rb = fa[key], fb[key]
        if ra.info.status != rb.info.status:
            status_diffs.append(f"{key}: {ra.info.status} vs {rb.info.status}")
        ma, mb = ra.data.metrics, rb.data.metrics
        if set(ma) != set(mb):
            metric_set_diffs.append(f"{key}: {sorted(set(ma) ^ set(mb))}")
        for m in sorted(set(ma) & set(mb)):
            a, b = ma[m], mb[m]
            n_values += 1
            if math.isnan(a) or math.isnan(b):
                nan_mismatch += math.isnan(a) != math.isnan(b)
                continue
            if abs(a - b) > worst:
                worst, where = abs(a - b), f"{key} {m}: {a!r} vs {b!r}"
        if ra.data.params != rb.data.params:
            diff = {k for k in set(ra.data.params) | set(rb.data.params) if ra.data.params.get(k) != rb.data.params.get(k)}
            param_diffs.append(f"{key}: {sorted(diff)}")
    print(f"fold runs: {len(fa)} vs {len(fb)}, paired {len(set(fa) & set(fb))}, unpaired {len(only)}")
    print(f"metric values compared: {n_values}; max abs diff: {worst:.3g}{'  (' + where + ')' if where else ''}")
    print(f"NaN in one run only: {nan_mismatch}; metric-name mismatches: {len(metric_set_diffs)}")
    print(f"status equal: {not status_diffs and pa.info.status == pb.info.status}; "
          f"fold params equal: {not param_diffs}")
    for line in (only + status_diffs + metric_set_diffs + param_diffs)[:20]:
        print("  differs:", line)
    sa, sb = ({k: v for k, v in _summary_metrics(c, p).items() if kept(k)} for c, p in ((ca, pa), (cb, pb)))
    if excluded:
        print(f"left out: {', '.join(sorted(excluded))}")
    n_s, worst_s, where_s, nan_s = _max_diff(sa, sb)
    print(f"summary/parent metric values compared: {n_s} (unpaired {len(set(sa) ^ set(sb))}); max abs diff: "
          f"{worst_s:.3g}{'  (' + where_s + ')' if where_s else ''}; NaN in one run only: {nan_s}")
    only += sorted(set(sa) ^ set(sb))
    nan_mismatch += nan_s
    worst = max(worst, worst_s)
    same = not (only or status_diffs or metric_set_diffs or param_diffs or nan_mismatch) and worst <= args.tol
    print("IDENTICAL" if same and worst == 0 else ("WITHIN TOLERANCE" if same else "DIFFERENT"))
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
