"""Kept for importers not yet moved: the spool machinery lives in storage/spool.py."""

from floom_git.storage.spool import (  # noqa: F401
    CommitTimer,
    drop_prefix,
    files_under,
    fsync_append,
    fsync_write,
    unapplied,
)
