"""GET /metrics: Prometheus text for admins only, requests by route template, commits, pushes,
runs by status, queue depth, watcher lag and asyncio tasks, one registry per app."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from floom_git.http.app import create_app
from tests.conftest import SECRET, add_member

DEADLINE = 20.0


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a Prometheus exposition (parsing checks it)."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float | None:
    return samples(text).get((name, tuple(sorted(labels.items()))))


@pytest.fixture
async def admin(client) -> dict[str, str]:
    _, headers = add_member(client.server.app, "default", None, "root", admin=True)
    return headers


async def scrape(client, headers) -> str:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    return await resp.text()


async def eventually(client, headers, name: str, labels: dict[str, str], at_least: float) -> str:
    end = asyncio.get_running_loop().time() + DEADLINE
    while True:
        text = await scrape(client, headers)
        got = value(text, name, **labels)
        if got is not None and got >= at_least:
            return text
        assert asyncio.get_running_loop().time() < end, f"{name}{labels} stayed {got}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("role", [None, "viewer", "member"])
async def test_get_metrics_non_admin_is_refused(client, role):
    _, headers = add_member(client.server.app, "default", role, f"u-{role}")
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 403
    assert "detail" in await resp.json()


async def test_get_metrics_without_credentials_is_401(anon):
    resp = await anon.get("/metrics")
    assert resp.status == 401


async def test_get_metrics_counts_requests_by_route_template(client, admin):
    for path in ("/workers/word-count", "/api/workers/word-count", "/v1/workers/research-brief"):
        assert (await client.get(path)).status == 200
    assert (await client.get("/api/workers/no-such-worker")).status == 404
    assert (await client.get("/no/such/path/abc123")).status == 404
    text = await scrape(client, admin)
    assert value(text, "floom_http_requests_total", method="GET", route="/workers/{id}",
                 status="200") == 3
    assert value(text, "floom_http_requests_total", method="GET", route="/workers/{id}",
                 status="404") == 1
    assert value(text, "floom_http_requests_total", method="GET", route="unmatched",
                 status="404") == 1
    assert value(text, "floom_http_request_duration_seconds_count", method="GET",
                 route="/workers/{id}") == 4
    assert "abc123" not in text and "word-count" not in text  # never a raw path as a label


async def test_get_metrics_counts_commits_by_ref(client, admin):
    before = value(await scrape(client, admin), "floom_commits_total", workspace="default",
                   ref="main") or 0
    for i in range(3):
        resp = await client.put(f"/api/contexts/company/files/m{i}.md", data=f"note {i}\n",
                                headers={"content-type": "text/markdown"})
        assert resp.status == 200, await resp.text()
    text = await scrape(client, admin)
    assert value(text, "floom_commits_total", workspace="default", ref="main") == before + 3


async def test_get_metrics_reports_runs_by_status_and_queue(client, admin):
    resp = await client.post("/api/workers/word-count/runs", json={"inputs": {"text": "a b c"}})
    assert resp.status in (200, 201, 202), await resp.text()
    text = await eventually(client, admin, "floom_runs", {"workspace": "default",
                                                          "status": "completed"}, 1)
    assert value(text, "floom_runs", workspace="default", status="failed") == 0
    assert value(text, "floom_run_queue_depth") == 0
    assert value(text, "floom_runs_active") is not None
    assert (value(text, "floom_asyncio_tasks") or 0) >= 1
    assert (value(text, "process_open_fds") or 0) > 0
    assert (value(text, "process_resident_memory_bytes") or 0) > 0


async def test_get_metrics_counts_pushes(client, admin, tmp_path: Path):
    url = f"http://x:{SECRET}@127.0.0.1:{client.server.port}/git/default.git"
    work = tmp_path / "clone"

    def push() -> None:
        def run(*a: str) -> None:
            subprocess.run(a, cwd=work, check=True, capture_output=True)

        subprocess.run(["git", "clone", "-q", url, str(work)], check=True, capture_output=True)
        (work / "contexts" / "company" / "pushed.md").write_text("pushed\n")
        run("git", "add", "-A")
        run("git", "-c", "user.name=t", "-c", "user.email=t@x", "commit", "-qm", "push one")
        run("git", "push", "-q", "origin", "HEAD:main")

    await asyncio.to_thread(push)
    await eventually(client, admin, "floom_pushes_total", {"workspace": "default"}, 1)


async def test_get_metrics_reports_watcher_lag(aiohttp_client, settings, tmp_path: Path):
    app = create_app(settings.replace(watch=True, shared_secret_role="admin"))
    client = await aiohttp_client(app, headers={"x-floom-secret": SECRET})
    text = await eventually(client, {}, "floom_watcher_lag_seconds", {"workspace": "default"}, 0)
    assert value(text, "floom_watcher_pending_paths", workspace="default") is not None


async def test_create_app_twice_keeps_registries_apart(settings, tmp_path: Path):
    first = create_app(settings)
    second = create_app(settings.replace(data_dir=tmp_path / "other"))
    from floom_git.http.keys import METRICS

    first[METRICS].requests.labels("GET", "/x", "200").inc()
    labels = {"method": "GET", "route": "/x", "status": "200"}
    assert first[METRICS].registry.get_sample_value("floom_http_requests_total", labels) == 1
    assert second[METRICS].registry.get_sample_value("floom_http_requests_total", labels) is None
