"""Each worker's private copy of the similar-items shard does not outlive the worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shoprank.embeddings.shards import COPY_PREFIX, _remove_orphans


def _build(path: Path) -> None:
    path.mkdir(parents=True)
    (path / "segment").write_bytes(b"x" * 1024)


def test_a_workers_copy_is_removed_when_it_exits(tmp_path: Path):
    code = (
        "import sys, tempfile; from pathlib import Path\n"
        "tempfile.tempdir = sys.argv[2]\n"
        "from shoprank.embeddings.shards import own_copy\n"
        "def build(p): p.mkdir(parents=True); (p / 'segment').write_bytes(b'x')\n"
        "print(own_copy(Path(sys.argv[1]), build))\n"
    )
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "index"), str(scratch)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    copy = Path(done.stdout.strip())
    assert copy.parent.parent == scratch and copy.parent.name.startswith(COPY_PREFIX)
    assert not copy.parent.exists()  # removed at exit
    assert (tmp_path / "index" / "shard" / "segment").exists()  # the built shard stays


def test_copies_of_dead_processes_are_swept_and_live_ones_kept(tmp_path: Path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    orphan = tmp_path / f"{COPY_PREFIX}{dead.stdout.strip()}-abc"
    mine = tmp_path / f"{COPY_PREFIX}{os.getpid()}-def"
    other = tmp_path / "unrelated"
    for folder in (orphan, mine, other):
        _build(folder / "shard")
    _remove_orphans(tmp_path)
    assert not orphan.exists()
    assert mine.exists() and other.exists()
