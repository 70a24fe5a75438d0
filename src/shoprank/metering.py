"""Wall time and peak memory of pipeline stages (this process and its children)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import psutil


@dataclass
class StageMeasure:
    """What one stage cost."""

    stage: str
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return asdict(self)


def _tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


@contextmanager
def measure(stage: str, interval: float = 0.05) -> Iterator[StageMeasure]:
    """Measure a block: wall seconds and the peak RSS sampled every ``interval`` seconds."""
    result = StageMeasure(stage=stage)
    process = psutil.Process()
    peak = [_tree_rss(process)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _tree_rss(process))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    try:
        yield result
    finally:
        stop.set()
        sampler.join()
        result.wall_seconds = round(time.perf_counter() - started, 2)
        result.peak_rss_mb = round(max(peak[0], _tree_rss(process)) / 2**20, 1)
