"""Writing outputs so that a crash never leaves something half-written that looks complete."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


@contextmanager
def staging_dir(out_dir: Path, prefix: str) -> Iterator[Path]:
    """A temporary directory inside ``out_dir`` (same filesystem), always removed afterwards."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out_dir: Path, names: Sequence[str]) -> None:
    """Move staged folders ``names`` into ``out_dir`` in order, replacing older output."""
    for name in names:
        target = out_dir / name
        if target.exists():
            target.rename(staging / f"previous-{name}")
        (staging / name).rename(target)


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` next to ``path`` then rename, so a crash never leaves a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path
