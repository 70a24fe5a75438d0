"""Private copies of qdrant-edge shards: built once per folder, opened once per process."""

from __future__ import annotations

import os
from pathlib import Path


def own_copy(folder: Path, build) -> Path:
    """A private copy of the shard at ``folder``, built once (under a file lock) if missing.

    A qdrant-edge shard can be opened by one process at a time (its write-ahead log is
    locked), and every BentoML worker needs one: the first worker builds the shard, each
    worker opens its own copy (copying is fast; building took 48 s at seed scale). The copy
    is removed when the process exits; copies left by processes that died without exiting
    (killed) are removed by the next one that makes a copy.
    """
    import atexit
    import fcntl
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    shard, done = folder / "shard", folder / "complete"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(shard, ignore_errors=True)
            build(shard)
            done.touch()
    _remove_orphans(Path(tempfile.gettempdir()))
    private = Path(tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{os.getpid()}-"))
    atexit.register(shutil.rmtree, private, True)
    copy = private / "shard"
    shutil.copytree(shard, copy)
    return copy


#: Private shard copies are ``<tmp>/shoprank-index-<pid>-<random>``.
COPY_PREFIX = "shoprank-index-"


def _remove_orphans(folder: Path) -> None:
    """Remove private copies whose process is gone."""
    import shutil

    import psutil

    for path in folder.glob(f"{COPY_PREFIX}*"):
        pid = path.name.removeprefix(COPY_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
