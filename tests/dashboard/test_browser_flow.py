"""The dashboard in a real browser (headless Chromium through Playwright): sign in, create a
worker from the form, run it from its generated run form and watch the log and status arrive
live over SSE, see the outputs, approve a pending run with an edited output, roll back a
version; then every other page once. Each step leaves a screenshot in test-artifacts/."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from aiohttp import ClientSession

from tests.dashboard.conftest import PASSWORD, make_user, shot

APPROVAL_YML = """schema_version: "0.3"
name: post-draft
title: Post draft
description: Drafts a post; a person approves it before it goes out.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: topic
      type: string
      required: true
  outputs:
    - name: post
      type: string
approvals:
  required: true
  label: Publish the post
"""
APPROVAL_PY = """import json
inputs = json.load(open("inputs.json"))
if inputs.get("decision") == "approved":
    print("publishing", inputs["approved_output"]["post"])
    out = {"published": inputs["approved_output"]["post"]}
else:
    out = {"post": "Draft about " + inputs["topic"]}
json.dump({"status": "success", "outputs": out}, open("result.json", "w"))
"""
SLEEPER_YML = """schema_version: "0.3"
name: sleeper
title: Sleeper
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
"""
SLEEPER_PY = "import time\nprint('holding the only run slot')\ntime.sleep(600)\n"
SHOUT_YML = """schema_version: "0.3"
name: shout
title: Shout
description: Repeats a text in capitals.
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
  inputs:
    - name: text
      type: string
      required: true
    - name: times
      type: integer
      default: 1
  outputs:
    - name: shouted
      type: string
"""
SHOUT_PY = """import json
inputs = json.load(open("inputs.json"))
print("shouting", inputs["text"])
print("done shouting")
out = {"shouted": (inputs["text"].upper() + " ") * int(inputs["times"])}
json.dump({"status": "success", "outputs": {"shouted": out["shouted"].strip()}},
          open("result.json", "w"))
"""
WAIT = 30_000  # ms; generous for a busy machine, never a pass condition on its own


@pytest.fixture
def settings(settings):  # type: ignore[no-untyped-def]
    # one run at a time, so a run can be held in the queue while its page is open
    return dataclasses.replace(settings, max_concurrent_runs=1)


class Api:
    def __init__(self, http: ClientSession, origin: str, token: str) -> None:
        self.http, self.origin, self.headers = http, origin, {"x-floom-token": token}

    async def __call__(self, method: str, path: str, **kw: Any) -> Any:
        async with self.http.request(
            method, self.origin + path, headers=self.headers, **kw
        ) as resp:
            assert resp.status < 300, (method, path, resp.status, await resp.text())
            return await resp.json()


async def test_browser_sign_in_create_run_live_approve_rollback(browser, server, origin):
    _, token = make_user(server, "ada")
    async with ClientSession() as http:
        api = Api(http, origin, token)
        page = await (await browser.new_context(viewport={"width": 1280, "height": 860})).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda dialog: dialog.accept())

        # sign in: the dashboard sends a stranger to the sign-in page and back
        await page.goto(origin + "/ui/workers")
        assert "/ui/login" in page.url
        await shot(page, "01-sign-in")
        await page.fill("#username", "ada")
        await page.fill("#password", PASSWORD)
        await page.click("button:has-text('Sign in')")
        await page.wait_for_url(origin + "/ui/workers")
        assert await page.is_visible("text=Word count")
        await shot(page, "02-workers")

        # create a worker from the form
        await page.click("text=New worker")
        await page.fill("#worker_yml", SHOUT_YML)
        await page.fill("#run_py", SHOUT_PY)
        await shot(page, "03-new-worker")
        await page.click("button:has-text('Create worker')")
        await page.wait_for_url(origin + "/ui/workers/shout")
        assert "Created worker shout" in await page.inner_text(".notice")
        await shot(page, "04-worker")

        # hold the only run slot, so the new run waits in the queue with its page open
        await api("POST", "/api/workers", json={"worker_yml": SLEEPER_YML, "run_py": SLEEPER_PY})
        blocker = await api("POST", "/api/workers/sleeper/runs", json={})
        for _ in range(600):
            if (await api("GET", f"/api/runs/{blocker['run_id']}"))["status"] == "running":
                break
            await page.wait_for_timeout(100)

        # the run form is generated from the declared inputs
        await page.click("a.btn:has-text('Run')")
        await page.wait_for_url(origin + "/ui/workers/shout/run")
        assert await page.get_attribute("#in-times", "type") == "number"
        await page.fill("#in-text", "hello floom")
        await shot(page, "05-run-form")
        await page.click("button:has-text('Start run')")
        await page.wait_for_url(re.compile(r".*/ui/runs/run_[0-9a-f]+$"))
        run_url = page.url
        assert await page.inner_text("[data-run-status]") == "queued"
        await page.evaluate("window.notReloaded = true")
        await page.wait_for_function(
            "() => document.getElementById('run-log').dataset.following === 'yes'"
        )
        await shot(page, "06-run-queued")

        # free the slot: the run starts, and its log, status and outputs arrive without a reload
        await api("POST", f"/api/runs/{blocker['run_id']}/cancel")
        await page.wait_for_selector("#run-log .line:has-text('done shouting')", timeout=WAIT)
        await page.wait_for_function(
            "() => document.querySelector('[data-run-status]').textContent === 'completed'",
            timeout=WAIT)
        await page.wait_for_selector("#run-outputs:has-text('HELLO FLOOM')", timeout=WAIT)
        assert await page.evaluate("window.notReloaded") is True
        assert page.url == run_url
        await shot(page, "07-run-live-completed")

        # approve a pending run with an edited output
        await api("POST", "/api/workers", json={"worker_yml": APPROVAL_YML, "run_py": APPROVAL_PY})
        pending = await api(
            "POST", "/api/workers/post-draft/runs", json={"inputs": {"topic": "git"}}
        )
        for _ in range(600):
            if (await api("GET", f"/api/runs/{pending['run_id']}"))["status"] == "pending_approval":
                break
            await page.wait_for_timeout(100)
        await page.click("nav >> text=Approvals")
        await page.wait_for_selector("text=Publish the post")
        edit = f"#edit-{pending['run_id']}"
        assert "Draft about git" in await page.input_value(edit)
        await page.fill(edit, '{"post": "Edited: all about git"}')
        await page.fill(f"#note-{pending['run_id']}", "tone it down")
        await shot(page, "08-approvals")
        await page.click("button:has-text('Approve')")
        await page.wait_for_url(re.compile(r".*/ui/runs/run_[0-9a-f]+$"))
        await page.wait_for_selector("#run-outputs:has-text('Edited: all about git')", timeout=WAIT)
        await shot(page, "09-follow-up-run")
        original = await api("GET", f"/api/runs/{pending['run_id']}")
        assert original["approval"]["status"] == "approved"
        assert original["approval"]["edited_output"] == {"post": "Edited: all about git"}
        assert original["approval"]["annotation"] == "tone it down"

        # roll back a version: change the worker, compare the versions, restore the first one
        await api("PUT", "/api/workers/shout/files", json={"files": [
            {"path": "worker.yml", "content": SHOUT_YML},
            {"path": "run.py", "content": SHOUT_PY.replace("done shouting", "finished")}]})
        await page.goto(origin + "/ui/workers/shout/versions")
        assert await page.is_visible(".diff-file:has-text('run.py')")
        assert "finished" in await page.inner_text(".diff-file")
        await shot(page, "10-versions-diff")
        await page.click("button:has-text('Roll back to this')")
        await page.wait_for_selector(".notice:has-text('Restored shout')")
        await shot(page, "11-rolled-back")
        files = {f["path"]: f["content"] for f in (await api("GET", "/api/workers/shout"))["files"]}
        assert "done shouting" in files["run.py"] and "finished" not in files["run.py"]
        versions = await api("GET", "/api/workers/shout/versions")
        assert versions[0]["message"].startswith("rollback: restore shout to ")

        # the worker page charts the runs (server-side SVG) and lists them
        await page.goto(origin + "/ui/workers/shout")
        assert await page.locator("svg.chart rect.bar.completed").count() == 1
        await shot(page, "12-worker-with-runs")
        await page.click("nav >> text=Runs")
        assert await page.is_visible("#run-rows >> text=Post draft")
        await shot(page, "13-runs")

        assert errors == [], errors
