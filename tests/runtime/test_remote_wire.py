"""The sealed ticket of a Celery task: only the shared key opens it, only for its run and attempt,
and the broker-visible part carries secret names, never values or the run token."""

from __future__ import annotations

import msgspec
import pytest

from floom_git.runtime import remote_wire as wire
from floom_git.runtime.celery_executor import retry_policy
from floom_git.schemas.manifest import parse_manifest


def _ticket(**over: object) -> wire.Ticket:
    values: dict = dict(
        home="http://home:8000",
        workspace="default",
        workspace_uid="ws.1",
        run_id="run_aaaaaaaaaaaa",
        attempt=1,
        worker_id="w-one",
        worker_sha="a" * 40,
        inputs={"text": "hi"},
        token="floomrun_tok",
        secrets={"API_KEY": "v4lue"},
        claim_by=2e9,
    )
    values.update(over)
    return wire.Ticket(**values)


def test_the_message_shows_names_and_hides_values_and_token():
    key = wire.parse_key(wire.new_key())
    message = wire.task_message(key, _ticket())
    raw = msgspec.json.encode(wire.encode_task(message))
    assert b"API_KEY" in raw and b"run_aaaaaaaaaaaa" in raw
    assert b"v4lue" not in raw and b"floomrun_tok" not in raw
    assert wire.unseal(key, wire.decode_task(msgspec.json.decode(raw))) == _ticket()


def test_another_key_or_a_moved_ticket_does_not_open():
    key = wire.parse_key(wire.new_key())
    message = wire.task_message(key, _ticket())
    with pytest.raises(ValueError, match="not sealed with this executor's"):
        wire.unseal(wire.parse_key(wire.new_key()), message)
    for moved in (msgspec.structs.replace(message, run_id="run_bbbbbbbbbbbb"),
                  msgspec.structs.replace(message, attempt=2)):
        with pytest.raises(ValueError):
            wire.unseal(key, moved)
    # What the broker shows may be altered; the executor acts on the sealed ticket only.
    altered = msgspec.structs.replace(message, worker_sha="b" * 40, inputs={"text": "evil"})
    assert wire.unseal(key, altered).worker_sha == "a" * 40


@pytest.mark.parametrize("value", [None, "", "short", "!!!!"])
def test_a_missing_or_malformed_key_is_refused(value):
    with pytest.raises(ValueError, match="FLOOM_EXECUTOR_KEY"):
        wire.parse_key(value)


YML = """schema_version: "0.3"
name: w-one
title: w
description: d
version: 1.0.0
exec:
  entry: run.py
  runtime: python311
"""


@pytest.mark.parametrize(("extra", "expected"), [
    ("", (1, 0.0)),
    ("retry:\n  max_attempts: 2\n  delay_seconds: 5\n", (2, 5.0)),
    ("retry: {}\n", (3, 0.0)),
    ("retry:\n  max_attempts: 50\n", (10, 0.0)),
    ("retry:\n  \"on\": [timeout]\n", (1, 0.0)),
    ("retry:\n  \"on\": [executor_lost]\n  max_attempts: 4\n", (4, 0.0)),
])
def test_retry_policy_for_a_lost_executor(extra, expected):
    assert (
        retry_policy(parse_manifest((YML + extra).encode(), where="worker.yml", folder="w-one"))
        == expected
    )


def test_a_celery_home_node_refuses_to_start_without_broker_or_key(tmp_path):
    from floom_git.config import Settings
    from floom_git.http.app import create_app

    base = dict(data_dir=tmp_path / "d", secret="test-secret-0123456789", executor="celery")
    with pytest.raises(ValueError, match="FLOOM_EXECUTOR_KEY"):
        create_app(Settings(**base, celery_broker="redis://127.0.0.1:1/0"))
    with pytest.raises(ValueError, match="FLOOM_CELERY_BROKER"):
        create_app(Settings(**base, executor_key=wire.new_key()))


def test_floom_executor_command_line(tmp_path, capsys, monkeypatch):
    import os

    from floom_git import cli

    assert cli.main(["executor", "--new-key"]) == 0
    assert len(wire.parse_key(capsys.readouterr().out.strip())) == 32
    for name in [k for k in os.environ if k.startswith(("FLOOM_", "WORKEROS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FLOOM_EXECUTOR_KEY", wire.new_key())
    assert cli.main(["executor", "--data-dir", str(tmp_path)]) == 2
    assert "FLOOM_CELERY_BROKER is not set" in capsys.readouterr().err


def test_config_reads_the_executor_settings():
    from floom_git import config

    s = config.from_env(
        {
            "FLOOM_EXECUTOR": "Celery",
            "FLOOM_CELERY_BROKER": "redis://r:6379/0",
            "FLOOM_HOME_URL": "https://a.example/",
            "FLOOM_EXECUTOR_LOST_SECONDS": "9",
        }
    )
    assert (s.executor, s.celery_broker, s.executor_url, s.executor_lost_seconds) == (
        "celery", "redis://r:6379/0", "https://a.example", 9.0)
    with pytest.raises(ValueError, match="FLOOM_EXECUTOR must be one of"):
        config.from_env({"FLOOM_EXECUTOR": "ray"})
