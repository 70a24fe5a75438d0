"""Shared fixtures: a tiny shop built through the real pipeline once per test session."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoprank.settings import Settings, load_settings

TINY_SEED = 7


@pytest.fixture(scope="session")
def tiny_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings pointing at a fresh temporary data directory."""
    return load_settings(data_dir=tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def tiny_platform(tiny_settings: Settings):
    """Generate -> dbt build -> feast apply -> materialize -> training set, at tiny scale."""
    from shoprank.pipeline import run_pipeline

    report = run_pipeline(
        tiny_settings, scale="tiny", seed=TINY_SEED, training_rows=3000, progress=False
    )
    return report


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on 127.0.0.1 (CI installs it); yields 'host:port'."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (CI installs it: apt-get install redis-server)")
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail(f"redis-server did not start on port {port} within 10 s")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
