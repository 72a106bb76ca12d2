"""Elections among workers racing to create the same run (a group's parent, a final model), and the retry
of writes that other workers make at the same instant."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from benchmark.tracking.names import TAG

# Workers racing to create the same run (a group's parent, a final model) elect one (`elect`). A claim
# that is neither elected nor FINISHED and older than this was left by a killed process and is ignored.
CLAIM_STALE_S = 30.0

def _elected(run) -> bool:
    return run.data.tags.get(f"{TAG}elected") == "true" or run.info.status == "FINISHED"

def _counts(run) -> bool:
    """Elected, or a claim young enough that its worker may still be electing (else: left by a kill)."""
    return _elected(run) or (time.time() * 1000 - (run.info.start_time or 0)) < CLAIM_STALE_S * 1000

def age_order(run) -> tuple:
    return (run.info.start_time or 0, run.info.run_id)

def retry(fn: Callable[[], Any], tries: int = 6) -> Any:
    """Writes to a run that other workers write too can hit the store's unique constraints: try again."""
    for attempt in range(tries):
        try:
            return fn()
        except mlflow.exceptions.MlflowException:
            if attempt == tries - 1:
                raise
            time.sleep(random.uniform(0.05, 0.3 * (attempt + 1)))


def elect(client: MlflowClient, candidates: Callable[[], list[Any]], create: Callable[[], str]) -> tuple[str, bool]:
    """Elect at most one run among workers racing to create it; returns (elected run id, created here).

    `candidates()` lists the active runs competing for the slot. A run counts while it is elected
    (tag `neipalette.elected`, or FINISHED) or is a claim younger than CLAIM_STALE_S. With none, this
    worker creates a claim and looks again: a claim that sees no other wins and is tagged elected, one
    that sees another deletes itself and retries after a random pause. Two claims cannot both win: the
    one that looks later sees the earlier (created before it looked, never deleted, elected right after).
    """
    deadline = time.monotonic() + 4 * CLAIM_STALE_S
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        live = [r for r in candidates() if _counts(r)]
        elected = [r for r in live if _elected(r)]
        if elected:
            return min(elected, key=age_order).info.run_id, False
        if not live:
            mine = create()
            if not [r for r in candidates() if _counts(r) and r.info.run_id != mine]:
                client.set_tag(mine, f"{TAG}elected", "true")
                return mine, True
            client.delete_run(mine)
        time.sleep(random.uniform(0.1, 0.5 + 0.1 * min(attempt, 10)))
    raise RuntimeError(f"could not elect a run among concurrent workers in {4 * CLAIM_STALE_S:.0f} s")
