"""The run queue: FIFO under the concurrency cap, queue positions, and grouped record commits."""

from __future__ import annotations

import itertools

import pytest

from floom_git.schemas.run import RunRecord
from floom_git.services import runs
from floom_git.services.run_records import RunStore
from floom_git.services.workspaces import WorkspaceManager
from tests.conftest import git
from tests.http.test_runs import RESULT_OK, make_worker, trigger, wait_run


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


def _record(i: int) -> RunRecord:
    record = RunRecord(id=f"run_{i:012x}", worker_id="word-count", worker_name="Word count",
                       worker_sha="0" * 40, created_at=f"2026-05-01T10:00:0{i}.000Z")
    runs.transition(record, "queued")
    return record


@pytest.fixture
async def workspace(settings):
    manager = WorkspaceManager(settings)
    manager.open_all()
    return await manager.create("default")


async def test_record_store_groups_changes_into_one_commit(workspace):
    store = RunStore(workspace)
    store.load()
    for i in range(5):
        store.put(_record(i))
    await store.flush()
    log = git(workspace.path, "log", "--format=%s", "floom/runs").splitlines()
    assert log == ["runs: record 5 runs (5 queued)"]
    files = git(workspace.path, "ls-tree", "-r", "--name-only", "floom/runs").split()
    assert files == [f"runs/2026-05-01/run_{i:012x}/run.json" for i in range(5)]
    assert not list((workspace.settings.spool_dir / workspace.uid).glob("run_*/record.json"))
    await store.close()


async def test_record_store_spool_survives_crash_before_commit(workspace):
    store = RunStore(workspace)
    store.load()
    store.put(_record(1))  # acknowledged: on disk, not committed; then the process "dies"
    store.commits.cancel()
    again = RunStore(workspace)
    spooled = again.load()
    assert [r.id for r in spooled] == ["run_000000000001"]
    assert spooled[0].status == "queued"


async def test_record_store_appends_each_line_once(workspace):
    store = RunStore(workspace)
    store.load()
    rid = "run_000000000002"
    store.put(_record(2))
    store.append_line(rid, "feedback.ndjson", b'{"n": 1}')
    await store.flush()
    pending = workspace.settings.spool_dir / workspace.uid / rid / "append" / "feedback.ndjson"
    assert not pending.exists()
    # A crash after a commit but before the spool cleanup leaves committed lines behind.
    pending.parent.mkdir(parents=True, exist_ok=True)
    pending.write_bytes(b'{"n": 1}\n')
    store.append_line(rid, "feedback.ndjson", b'{"n": 2}')
    await store.flush()
    path = f"floom/runs:runs/2026-05-01/{rid}/feedback.ndjson"
    assert git(workspace.path, "show", path) == '{"n": 1}\n{"n": 2}\n'
    assert store.read_file(rid, "feedback.ndjson") == b"{\"n\": 1}\n{\"n\": 2}\n"
    await store.close()
