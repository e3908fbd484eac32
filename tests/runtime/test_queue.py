"""The run queue: FIFO under the concurrency cap, queue positions, and grouped record commits."""

from __future__ import annotations

import itertools

import pytest

from tests.conftest import git
from tests.http.test_runs import RESULT_OK, committed, make_worker, trigger, wait_run


@pytest.fixture
def settings(settings):
    return settings.replace(max_concurrent_runs=2, run_commit_delay=0.2)


async def test_queue_runs_fifo_under_concurrency_cap(client):
    await make_worker(client, "gate", "import time\ntime.sleep(300)\n")
    await make_worker(client, "quick", RESULT_OK)
    blockers = [(await trigger(client, "gate"))["run_id"] for _ in range(2)]
    queued = [(await trigger(client, "quick"))["run_id"] for _ in range(3)]
    for rid in blockers:
        await wait_run(client, rid, until=("running",))
    positions = [(await (await client.get(f"/api/runs/{rid}")).json())["queue_position"]
                 for rid in queued]
    assert positions == [1, 2, 3]
    listed = await (await client.get("/api/runs?status=queued")).json()
    assert [(r["id"], r["queue_position"]) for r in listed] == [(queued[2], 3), (queued[1], 2),
                                                                  (queued[0], 1)]
    await client.post(f"/api/runs/{blockers[0]}/cancel")
    runs = [await wait_run(client, rid, until=("completed",)) for rid in queued]
    # One slot was free: the queued runs ran one after another, in order.
    for earlier, later in itertools.pairwise(runs):
        assert earlier["completed_at"] <= later["started_at"]
    await client.post(f"/api/runs/{blockers[1]}/cancel")
    await wait_run(client, blockers[1], until=("cancelled",))


async def test_record_commits_group_many_runs(client, ws_path):
    ids = [(await trigger(client, "word-count", {"text": f"n {i}"}))["run_id"] for i in range(6)]
    for rid in ids:
        await wait_run(client, rid)
    for rid in ids:
        await committed(ws_path, rid, "completed")
    commits = int(git(ws_path, "rev-list", "--count", "floom/runs").strip())
    assert commits < 3 * len(ids)  # without grouping: queued, running and completed per run
    git(ws_path, "fsck", "--no-progress")
