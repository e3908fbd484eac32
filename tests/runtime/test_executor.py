"""The script runner on its own: real subprocesses in a scratch dir, each result.json error code,
timeout, cancellation, scrubbed environment, artifacts and requirements environments."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from floom_git.config import Settings
from floom_git.runtime.executor import Executor, Job, reap_orphans


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", secret="x", watch=False, run_max_result_bytes=1024,
                    run_kill_grace_seconds=2.0)


def job(
    settings: Settings,
    run_py: str,
    *,
    timeout: float = 30,
    files: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    inputs: dict | None = None,
) -> Job:
    spool = settings.spool_dir / "default" / "run_test"
    all_files = {"run.py": (run_py.encode(), False)}
    all_files.update({k: (v.encode(), False) for k, v in (files or {}).items()})
    return Job(run_id="run_test", worker_id="tester", command="python run.py",
               workdir=spool / "work", artifacts_dir=spool / "artifacts", files=all_files,
               inputs=inputs or {}, timeout=timeout, secrets=secrets or {})


async def execute(settings: Settings, run_py: str, **kw) -> tuple:
    logs: list[tuple[str, str]] = []
    outcome = await Executor(settings).run(
        job(settings, run_py, **kw), lambda lvl, msg: logs.append((lvl, msg)), asyncio.Event()
    )
    return outcome, logs


def result(data: object) -> str:
    return f"import json\njson.dump({data!r}, open('result.json', 'w'))\n"


@pytest.mark.parametrize(("run_py", "code"), [
    ("print('no result')\n", "missing_result"),
    ("open('result.json', 'w').write('x' * 4096)\n", "output_too_large"),
    ("open('result.json', 'w').write('{not json')\n", "invalid_result_json"),
    (result([1, 2]), "invalid_result_json"),
    (result({"status": "done"}), "invalid_result_json"),
    (result({"status": "success", "outputs": [1]}), "invalid_outputs_shape"),
    (result({"status": "success", "outputs": "text"}), "invalid_outputs_shape"),
    (result({"status": "error", "outputs": {}, "error": None}), "worker_reported_error"),
    (result({"status": "error", "error": "quota hit"}), "worker_reported_error"),
    (result({"status": "error", "error": "bad key", "error_code": "auth_failed"}), "auth_failed"),
    ("import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n", "execution_error"),
    (result({"status": "success", "outputs": {}}) + "raise SystemExit(2)\n", "execution_error"),
])
async def test_run_result_contract_failure_codes(settings, run_py, code):
    outcome, _logs = await execute(settings, run_py)
    assert outcome.status == "failed"
    assert outcome.error_code == code
    assert outcome.error


async def test_run_nonzero_exit_error_names_code_and_stderr(settings):
    outcome, logs = await execute(
        settings, "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n"
    )
    assert outcome.exit_code == 3
    assert outcome.error == "The process exited with code 3: boom"
    assert ("warning", "boom") in logs


async def test_run_success_reads_inputs_and_collects_out_files(settings):
    run_py = ("import json, os\ninputs = json.load(open('inputs.json'))\n"
              "os.makedirs('out', exist_ok=True)\nopen('out/a.txt', 'w').write(inputs['x'])\n"
              "print('hello')\n" + result({"status": "success", "outputs": {"ok": True},
                                           "decision_required": {"label": "Ship?"}}))
    outcome, logs = await execute(settings, run_py, inputs={"x": "payload"})
    assert outcome.status == "completed", outcome
    assert outcome.outputs == {"ok": True}
    assert outcome.decision_required == {"label": "Ship?"}
    assert [a.path for a in outcome.artifacts] == ["out/a.txt"]
    spool = settings.spool_dir / "default" / "run_test"
    assert (spool / "artifacts" / "out" / "a.txt").read_text() == "payload"
    assert not (spool / "work").exists()  # scratch dir removed
    assert ("info", "hello") in logs


async def test_run_timeout_kills_process_group(settings):
    outcome, logs = await execute(
        settings, "import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n", timeout=1
    )
    assert outcome.status == "failed" and outcome.error_code == "timeout"
    assert outcome.error == "The run exceeded its timeout of 1 seconds"
    assert any(msg.startswith("Timed out after 1s") for _, msg in logs)


async def test_run_cancel_event_stops_run(settings):
    ex = Executor(settings)
    cancel = asyncio.Event()
    logs: list[tuple[str, str]] = []

    def log(level: str, msg: str) -> None:
        logs.append((level, msg))
        if msg == "ready":
            cancel.set()

    outcome = await ex.run(
        job(settings, "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"), log, cancel
    )
    assert outcome.status == "cancelled" and outcome.error_code == "user_cancel"


async def test_run_environment_is_scrubbed_and_secrets_in_env_local(settings, monkeypatch):
    monkeypatch.setenv("SERVER_ONLY_SECRET", "leak")
    run_py = ("import json, os\n"
              "json.dump({'status': 'success', 'outputs': {'keys': sorted(os.environ), "
              "'tok': os.environ.get('TOK'), 'env_local': open('.env.local').read()}}, "
              "open('result.json', 'w'))\n")
    outcome, _ = await execute(settings, run_py, secrets={"TOK": "value-1234"})
    keys = outcome.outputs["keys"]
    assert "SERVER_ONLY_SECRET" not in keys and "TOK" in keys
    assert outcome.outputs["tok"] == "<REDACTED:TOK>"
    assert outcome.outputs["env_local"] == "TOK=<REDACTED:TOK>\n"


async def test_run_requirements_install_failure_is_install_failed(settings):
    outcome, logs = await execute(settings, result({"status": "success"}),
                                  files={"requirements.txt": "./no-such-local-package\n"})
    assert outcome.status == "failed" and outcome.error_code == "install_failed"
    assert any(msg.startswith("pip: ") and "no-such-local-package" in msg for _, msg in logs)
    assert list(settings.envs_dir.iterdir()) == []  # no half-built environment is kept


async def test_run_requirements_comment_only_uses_cached_environment(settings):
    run_py = (
        "import json, sys\njson.dump({'status': 'success', 'outputs': {'prefix': sys.prefix}}, "
        "open('result.json', 'w'))\n"
    )
    reqs = {"requirements.txt": "# nothing needed yet\n"}
    first, logs1 = await execute(settings, run_py, files=reqs)
    assert first.status == "completed", first
    assert first.outputs["prefix"].startswith(str(settings.envs_dir))
    second, logs2 = await execute(settings, run_py, files=reqs)
    assert second.outputs["prefix"] == first.outputs["prefix"]
    assert any(msg.startswith("Installing requirements.txt") for _, msg in logs1)
    assert any(msg.startswith("Using cached environment") for _, msg in logs2)


async def test_run_long_output_line_is_split(settings):
    run_py = "print('x' * 40000)\n" + result({"status": "success"})
    outcome, logs = await execute(settings, run_py)
    assert outcome.status == "completed"
    xs = [msg for _, msg in logs if msg.startswith("xxx")]
    assert "".join(xs) == "x" * 40000 and len(xs) == 3


def test_job_inputs_json_written(settings):
    ex = Executor(settings)
    j = job(settings, "", inputs={"a": [1, "b"]})
    ex._prepare(j)
    assert json.loads((j.workdir / "inputs.json").read_text()) == {"a": [1, "b"]}
    assert not (j.workdir / ".env.local").exists()


def test_reap_orphans_kills_group_left_in_run_scratch_dir(settings, tmp_path):
    import subprocess

    spool = settings.spool_dir / "default"
    work = spool / "run_abc" / "work"
    work.mkdir(parents=True)
    orphan = subprocess.Popen(["sleep", "300"], cwd=work, start_new_session=True)
    (spool / "run_abc" / "pgid").write_text(str(orphan.pid))
    other = tmp_path / "elsewhere"
    other.mkdir()
    bystander = subprocess.Popen(["sleep", "300"], cwd=other, start_new_session=True)
    (spool / "run_def").mkdir()
    (spool / "run_def" / "pgid").write_text(str(bystander.pid))  # not in its run's dir: spared
    try:
        assert reap_orphans(spool) == [orphan.pid]
        assert orphan.wait(timeout=20) == -9
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
