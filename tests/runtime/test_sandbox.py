"""The sandbox module on its own: a Spec becomes a bwrap command line that really confines (both
the privileged form used when the server is root and the user-namespace form used otherwise),
the probe names what is missing, and the settings switch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from floom_git import config
from floom_git.runtime.sandbox import (
    ROOT_RUN_UID_BASE,
    UNPRIVILEGED_PATH,
    Bind,
    Limits,
    Sandbox,
    Spec,
    env_script,
    memfd_with,
)

FORMS = [pytest.param(True, id="privileged", marks=pytest.mark.skipif(
             os.geteuid() != 0, reason="the privileged form is what a root server uses")),
         pytest.param(False, id="user-namespace")]
SECRET = "s3cret 'quoted' $HOME `x` \\ value"


def run(sandbox: Sandbox, spec: Spec) -> subprocess.CompletedProcess[str]:
    fd = memfd_with(env_script(spec.env))
    try:
        with sandbox.run_uid() as uid:
            argv = sandbox.argv(spec, fd, uid)
            assert SECRET not in " ".join(argv)  # the environment never travels in argv
            return subprocess.run(argv, pass_fds=(fd,), capture_output=True, text=True, timeout=60,
                                  env={"PATH": UNPRIVILEGED_PATH})
    finally:
        os.close(fd)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    (ro / "data.txt").write_text("read me\n")
    os.chmod(tmp_path, 0o755)
    os.chmod(rw, 0o777)  # the privileged form's command runs as an unprivileged uid of its own
    return rw, ro


@pytest.mark.parametrize("privileged", FORMS)
def test_spec_becomes_confining_bwrap_command(dirs, privileged):
    rw, ro = dirs
    script = (
        'echo "env=$SECRET_VALUE"; echo "path=$PATH"; id -u; hostname; '
        "cat /data/data.txt; echo x > /data/new 2>/dev/null || echo ro-refused; "
        'echo y > out.txt && echo rw-ok; ls /proc | grep -c "^[0-9]"; '
        f"ls {rw.parent} 2>/dev/null || echo host-hidden; ls /sys 2>/dev/null || echo no-sys; "
        'for d in / /etc /run /dev /tmp; do touch $d/x 2>/dev/null && echo "$d writable"; done; '
        "true"
    )
    spec = Spec(argv=["/bin/sh", "-c", script], cwd="/scratch",
                env={"SECRET_VALUE": SECRET, "PATH": "/usr/bin:/bin"},
                limits=Limits(cpu_seconds=10, file_bytes=1 << 20, processes=32),
                binds=[Bind(rw, "/scratch", writable=True), Bind(ro, "/data")])
    proc = run(Sandbox(privileged=privileged), spec)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"env={SECRET}" and lines[1] == "path=/usr/bin:/bin"
    if privileged:  # an unprivileged uid of its own
        assert int(lines[2]) >= ROOT_RUN_UID_BASE
    assert lines[3] == "floom-run"
    assert lines[4:7] == ["read me", "ro-refused", "rw-ok"]
    assert int(lines[7]) <= 4  # its own PID namespace
    assert lines[8:] == ["host-hidden", "no-sys"]
    assert (rw / "out.txt").read_text() == "y\n" and not (ro / "new").exists()


@pytest.mark.parametrize("privileged", FORMS)
def test_spec_environment_reaches_only_the_command(dirs, privileged):
    """A secret may be named LD_PRELOAD: it must not load into bwrap, setpriv or prlimit, which
    run before the command with more rights (ld.so warns once per process it loads into)."""
    spec = Spec(argv=["/bin/true"], cwd="/", env={"LD_PRELOAD": "/nowhere.so"},
                limits=Limits(cpu_seconds=10, file_bytes=1 << 20))
    proc = run(Sandbox(privileged=privileged), spec)
    assert proc.returncode == 0
    assert proc.stderr.count("/nowhere.so") == 1


@pytest.mark.parametrize("privileged", FORMS)
def test_spec_network_is_opt_in(dirs, privileged):
    probe = [
        "/bin/sh",
        "-c",
        "ls /sys/class/net 2>/dev/null; cat /proc/net/dev | tail -n +3 | cut -d: -f1",
    ]
    base = {
        "argv": probe,
        "cwd": "/",
        "env": {},
        "limits": Limits(cpu_seconds=10, file_bytes=1 << 20),
    }
    closed = run(Sandbox(privileged=privileged), Spec(**base)).stdout.split()
    shared = run(Sandbox(privileged=privileged), Spec(**base, network=True)).stdout.split()
    assert closed == ["lo"]
    assert "lo" in shared and len(shared) > 1


@pytest.mark.parametrize("privileged", FORMS)
def test_spec_limits_apply_inside(dirs, privileged):
    spec = Spec(
        argv=["/bin/sh", "-c", "prlimit --noheadings --output RESOURCE,SOFT --nproc --fsize --as"],
        cwd="/",
        env={},
        limits=Limits(cpu_seconds=10, file_bytes=4096, memory_bytes=1 << 30, processes=17),
    )
    limits = dict(
        line.split() for line in run(Sandbox(privileged=privileged), spec).stdout.splitlines()
    )
    assert limits == {"NPROC": "17", "FSIZE": "4096", "AS": str(1 << 30)}


def test_probe_names_missing_bubblewrap():
    problem = Sandbox("/nonexistent/bwrap").probe()
    assert (
        problem
        == "bubblewrap is not installed (/nonexistent/bwrap not found; Debian package bubblewrap)"
    )


def test_probe_succeeds_here():
    assert Sandbox().probe() is None


def test_run_uids_are_distinct_while_held():
    sandbox = Sandbox(privileged=True)
    with sandbox.run_uid() as first, sandbox.run_uid() as second:
        assert first != second
        assert min(first, second) >= ROOT_RUN_UID_BASE
    with Sandbox(privileged=False).run_uid() as none:
        assert none is None


@pytest.mark.parametrize(("value", "mode"), [(None, "bwrap"), ("bwrap", "bwrap"), ("none", "none"),
                                             (" NONE ", "none")])
def test_floom_sandbox_setting(value, mode):
    env = {} if value is None else {"FLOOM_SANDBOX": value}
    assert config.from_env(env).sandbox == mode


def test_floom_sandbox_setting_refuses_unknown_value():
    with pytest.raises(ValueError, match="FLOOM_SANDBOX must be one of bwrap, none, not 'off'"):
        config.from_env({"FLOOM_SANDBOX": "off"})


def test_serve_with_unknown_floom_sandbox_says_so(tmp_path):
    env = {**os.environ, "FLOOM_SANDBOX": "off"}
    proc = subprocess.run([sys.executable, "-m", "floom_git", "serve", "--data-dir", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: FLOOM_SANDBOX must be one of bwrap, none, not 'off'"
    assert not (tmp_path / "system").exists()


def test_probe_names_too_old_bubblewrap(tmp_path):
    old = tmp_path / "bwrap"
    old.write_text("#!/bin/sh\necho 'bubblewrap 0.6.1'\n")
    old.chmod(0o755)
    assert Sandbox(str(old)).probe() == "bubblewrap 0.6.1 is too old; 0.8.0 or newer is needed"
