"""A run's end is reported even when something it started escaped the kill and still holds its
output pipes (asyncio's wait() waits for them): what is left working in the run's folder is
killed, so neither the run nor the server's shutdown can hang, and nothing outlives the run."""

from __future__ import annotations

import asyncio
from pathlib import Path

from floom_git.runtime import process
from floom_git.runtime.sandbox import Limits, Spec


async def run_shell(home: Path, script: str, timeout: float) -> tuple[process.Ended, list[str]]:
    """Run `script` with sh, unconfined, in `home`; how it ended and its output lines."""
    home.mkdir()
    spec = Spec(argv=["/bin/sh", "-c", script], cwd=str(home), env={"PATH": "/usr/bin:/bin"},
                limits=Limits(cpu_seconds=60, file_bytes=10**6))
    lines: list[str] = []
    cmd = process.Command(spec, home, lines.append, lines.append, timeout=timeout, grace=0.2)
    return await asyncio.wait_for(process.run(cmd, None, asyncio.Event()), 60), lines


async def test_a_setsid_child_holding_the_pipes_is_killed_and_the_run_ends(tmp_path: Path):
    home = tmp_path / "work"
    ended, lines = await run_shell(home, "setsid sleep 300 & echo started", timeout=1.0)
    # The shell exited at once, but its escaped child kept the pipes open until it was killed.
    assert ended.reason == "timeout"
    assert "started" in lines
    assert process.strays(home) == []


async def test_a_run_ends_when_its_output_pipes_close_not_when_its_first_process_exits(
        tmp_path: Path):
    ended, lines = await run_shell(tmp_path / "work", "(sleep 0.3; echo late) & echo early",
                                   timeout=30.0)
    # The shell exits at once; what it started still writes to the run's output, and is waited
    # for rather than killed with the shell's process group.
    assert ended == process.Ended(0, None)
    assert lines == ["early", "late"]


async def test_strays_names_what_works_in_or_names_the_folder_and_nothing_else(tmp_path: Path):
    home = tmp_path / "run_1" / "work"
    home.mkdir(parents=True)
    inside = await asyncio.create_subprocess_exec("sleep", "300", cwd=home)
    naming = await asyncio.create_subprocess_exec("sh", "-c", "sleep 300; : " + str(home))
    elsewhere = await asyncio.create_subprocess_exec("sleep", "300", cwd=tmp_path)
    try:
        found = set(process.strays(home))
        assert {inside.pid, naming.pid} <= found and elsewhere.pid not in found
    finally:
        for proc in (inside, naming, elsewhere):
            proc.kill()
            await proc.wait()
