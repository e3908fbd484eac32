"""The Celery application both sides share: the home node publishes `floom.run` tasks with it,
`floom-git executor` consumes them. Late acknowledgement (a task whose worker dies is delivered
again), one task prefetched per free slot, and no result backend: nothing of a run is stored by
Celery beyond the task message itself (which holds no secret value)."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
from typing import Any

from floom_git.config import Settings

VISIBILITY_MARGIN = 600.0


def make_app(settings: Settings) -> Any:
    """A Celery app for `settings.celery_broker`; ValueError when it is not set."""
    if not settings.celery_broker:
        raise ValueError("FLOOM_CELERY_BROKER is not set (e.g. redis://127.0.0.1:6379/0); the "
                         "Celery executor needs the broker's URL")
    try:
        from celery import Celery  # the optional extra floom-git[celery]
    except ImportError:
        raise ValueError(
            "FLOOM_EXECUTOR=celery needs Celery: pip install 'floom-git[celery]'"
        ) from None

    app = Celery("floom_git", broker=settings.celery_broker, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=settings.celery_queue,
        # A delivery that is not acknowledged within this time is delivered again (Redis).
        # Longer than any run can take, so a healthy long run is not delivered twice; the home
        # node's claim refuses a second delivery anyway.
        broker_transport_options={"visibility_timeout": settings.max_run_timeout_seconds
                                  + settings.executor_claim_seconds + VISIBILITY_MARGIN},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
    )
    return app


log = logging.getLogger("floom_git.executor")
LOCK_FILE = "executor.lock"
RETRY_COUNTDOWN = 5  # seconds before a task whose home node was unreachable is tried again


def run_worker(settings: Settings, name: str | None = None) -> None:
    """`floom-git executor`: a Celery worker taking runs from `settings.celery_queue` until it
    is stopped. Runs execute in threads of this one process (each in its sandbox), so killing
    the process ends them all. One executor per data dir (its cache, environments, scratch)."""
    from floom_git.runtime import remote_wire
    from floom_git.runtime.executor import reap_orphans
    from floom_git.runtime.remote_worker import UNREACHABLE, run_task

    key = remote_wire.parse_key(settings.executor_key)
    app = make_app(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = os.open(settings.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ValueError(f"another executor uses {settings.data_dir}; give each executor its "
                         "own --data-dir") from None
    for pgid in reap_orphans(settings.spool_dir):  # unconfined runs of a killed executor
        log.warning("killed process group %d left by a run of a stopped executor", pgid)
    shutil.rmtree(settings.spool_dir, ignore_errors=True)

    @app.task(name=remote_wire.TASK, acks_late=True, bind=True, max_retries=None)
    def run(task: Any, message: Any) -> str:
        status = run_task(message, settings, key)
        if status == UNREACHABLE:  # the home node's claim window bounds the retries
            raise task.retry(countdown=RETRY_COUNTDOWN)
        return status

    concurrency = settings.executor_concurrency or os.cpu_count() or 1
    app.worker_main(["worker", "--pool=threads", f"--concurrency={concurrency}",
                     f"--queues={settings.celery_queue}",
                     f"--hostname={name or f'floom-executor-{os.getpid()}@{socket.gethostname()}'}",
                     "--without-gossip", "--without-mingle", "--without-heartbeat",
                     "--loglevel=INFO"])
