"""Asking ext4 to give each workspace a block group of its own: the workspaces folder carries
the Orlov allocator's top-of-hierarchy flag (TOPDIR, `chattr +T`, as /home does), so a folder
made in it is placed in a group with room rather than next to its siblings, and the files made
under it stay in that group.

Why: on ext4 without a journal, every new inode is found by stepping past each inode of its
block group that was freed in the last one to six minutes (the kernel's `recently_deleted`).
Files freed by another program in the same group make each of the server's file creations
dearer: a neighbour freeing 300 files a second under /tmp, where the workspaces were too, took
a file creation from 7 us to 300 us (docs/performance.md). Each workspace in its own group is
charged for its own deletions only. Where the flag cannot be set (other file systems, a folder
that is not ours), nothing changes.
"""

from __future__ import annotations

import array
import fcntl
import os
import struct
import sys
from pathlib import Path

# linux/fs.h: FS_IOC_GETFLAGS = _IOR('f', 1, long), FS_IOC_SETFLAGS = _IOW('f', 2, long) in
# the generic encoding (x86, arm); the kernel reads and writes an int through either.
_LONG = struct.calcsize("l")
FS_IOC_GETFLAGS = (2 << 30) | (_LONG << 16) | (ord("f") << 8) | 1
FS_IOC_SETFLAGS = (1 << 30) | (_LONG << 16) | (ord("f") << 8) | 2
FS_TOPDIR_FL = 0x00020000
_GENERIC = sys.platform == "linux" and os.uname().machine in ("x86_64", "aarch64")


def mark_top(folder: Path) -> bool:
    """Set the TOPDIR flag on `folder` (kept when it is set); False where it cannot be."""
    if not _GENERIC:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        flags = array.array("i", [0, 0])  # room for a long, whichever the kernel writes
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags)
        if not flags[0] & FS_TOPDIR_FL:
            flags[0] |= FS_TOPDIR_FL
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
        return True
    except OSError:  # not supported here (tmpfs, xfs, ...), or not ours to flag
        return False
    finally:
        os.close(fd)
