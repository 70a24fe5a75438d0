"""Serving benchmark: a real ``bentoml serve`` under open-loop load, against the floor.

For the service and for the framework floor (``bentos/floor/service.py:Floor``, BentoML
with no model) in the same run: start the server as a subprocess on 127.0.0.1, wait for
``/readyz``, push fixed rates, then (service only) step-search the highest rate whose p99
stays under the SLO. Around every rate the CPU seconds and resident memory of every process
of the server tree are sampled, so the report gives CPU ms per request and RSS per worker
next to the generator's own CPU (generator and server share the machine's cores).

A server pushed past its capacity keeps working on requests the generator has already given
up on, so after the warm-up and after every rate the benchmark waits (up to
``drain_max_s``) until the server tree is idle before going on: each rate starts on an idle
server, its CPU is not charged to the next rate, and ``drain_s`` says how long the backlog
took to clear.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psutil

from shoprank.serving.loadgen import LoadSettings, RequestTemplate, run_load, summarize

FLOOR_TARGET = "bentos/floor/service.py:Floor"
_WORKER_MODULE = "_bentoml_impl.worker.service"
_MB = 2**20


@dataclass(frozen=True)
class BenchSettings:
    """Rates, durations and the SLO of one benchmark run (all recorded in the report)."""

    rates: tuple[float, ...] = (100.0, 200.0, 300.0)
    duration_s: float = 20.0
    warmup_rate: float = 50.0
    warmup_s: float = 2.0
    slo_p99_ms: float = 100.0
    max_error_rate: float = 0.001
    search_steps: int = 4
    search_duration_s: float = 10.0
    search_growth: float = 1.5
    search_resolution_rps: float = 20.0
    timeout_s: float = 2.0
    max_in_flight: int = 256
    seed: int = 0
    workers: int = 1
    ready_timeout_s: float = 180.0
    drain_max_s: float = 60.0
    idle_cores: float = 0.15


@dataclass(frozen=True)
class ServerHandle:
    """A running ``bentoml serve``: its process (a process-group leader) and its URL."""

    process: subprocess.Popen[bytes]
    base_url: str
    startup_s: float


# Starting and stopping a server


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_name(target: str) -> str:
    """The service class named by a ``path/to/service.py:Class`` target (BentoML's default)."""
    return target.rsplit(":", 1)[-1]


def server_env(
    base: Mapping[str, str], name: str, workers: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The server's environment, with ``workers`` set through ``BENTOML_CONFIG_OVERRIDES``.

    ``bentoml serve`` (1.4) ignores ``--api-workers`` for ``@bentoml.service`` classes; their
    worker count is service configuration, which this JSON override replaces at start.
    An override already present in ``extra`` or ``base`` is kept and extended.
    """
    env = {**base, **(extra or {})}
    overrides = json.loads(env.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    overrides.setdefault("services", {}).setdefault(name, {})["workers"] = workers
    env["BENTOML_CONFIG_OVERRIDES"] = json.dumps(overrides)
    return env


def _log_tail(log: IO[bytes], limit: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


def wait_ready(base_url: str, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll ``GET /readyz`` until it answers 200, the process exits, or ``timeout_s`` passes.

    Raises:
        RuntimeError: The server exited or was not ready in time.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/readyz", timeout=1.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{base_url}/readyz not ready within {timeout_s:.0f} s")


def stop_server(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after ``grace_s``.

    Descendants that left the group are killed by pid afterwards.
    """
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.Error:
        descendants = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    _, alive = psutil.wait_procs(descendants, timeout=grace_s)
    for child in alive:
        child.kill()
    process.wait(timeout=grace_s)


@contextmanager
def bentoml_server(
    target: str,
    *,
    working_dir: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    ready_timeout_s: float = 180.0,
) -> Iterator[ServerHandle]:
    """Run ``bentoml serve <target> --host 127.0.0.1 --port <free>`` until the block ends.

    The server runs in its own process group, which is always stopped on exit. Its output
    goes to a temporary file, quoted in the error when it fails to become ready.

    Args:
        target: ``path/to/service.py:Class``, relative to ``working_dir``.
        working_dir: Directory the server runs in.
        env: Variables added to this process's environment for the server.
        workers: Worker processes of the service.
        ready_timeout_s: Longest wait for ``/readyz``.

    Yields:
        The running server.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1"]
    cmd += ["--port", str(port)]
    full_env = server_env(os.environ, service_name(target), workers, env)
    with tempfile.TemporaryFile() as log:
        started = time.monotonic()
        process = subprocess.Popen(
            cmd,
            cwd=working_dir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            try:
                wait_ready(base_url, process, ready_timeout_s)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; server output:\n{_log_tail(log)}") from None
            yield ServerHandle(process, base_url, round(time.monotonic() - started, 2))
        finally:
            stop_server(process)


# Measuring the server tree


@dataclass(frozen=True)
class TreeSample:
    """CPU seconds and RSS of each live process of a server tree, by pid."""

    cpu_seconds: dict[int, float]
    rss_bytes: dict[int, int]
    workers: frozenset[int]


def sample_tree(root_pid: int) -> TreeSample:
    """CPU (user + system) and RSS of ``root_pid`` and all its descendants right now."""
    root = psutil.Process(root_pid)
    cpu, rss, workers = {}, {}, set()
    for proc in [root, *root.children(recursive=True)]:
        try:
            with proc.oneshot():
                times, memory, cmdline = proc.cpu_times(), proc.memory_info(), proc.cmdline()
        except psutil.Error:
            continue
        cpu[proc.pid] = times.user + times.system
        rss[proc.pid] = memory.rss
        if _WORKER_MODULE in cmdline:
            workers.add(proc.pid)
    return TreeSample(cpu, rss, frozenset(workers))


def memory_usage(sample: TreeSample) -> dict[str, Any]:
    """Process count and RSS in MB: total, each worker, everything else (the supervisor)."""
    worker_rss = [sample.rss_bytes[pid] / _MB for pid in sorted(sample.workers)]
    total = sum(sample.rss_bytes.values()) / _MB
    return {
        "processes": len(sample.rss_bytes),
        "workers": len(worker_rss),
        "rss_mb_total": round(total, 1),
        "rss_mb_per_worker": [round(value, 1) for value in worker_rss],
        "rss_mb_supervisor": round(total - sum(worker_rss), 1),
    }


def server_usage(
    before: TreeSample, after: TreeSample, requests: int, elapsed_s: float
) -> dict[str, Any]:
    """What the server tree spent between two samples, per request and in cores."""
    cpu = sum(value - before.cpu_seconds.get(pid, 0.0) for pid, value in after.cpu_seconds.items())
    return {
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_request": round(1000 * cpu / requests, 3) if requests else None,
        "cpu_cores": round(cpu / max(elapsed_s, 1e-9), 3),
        **memory_usage(after),
    }


def wait_idle(root_pid: int, *, max_s: float, idle_cores: float, window_s: float = 0.5) -> float:
    """Wait until the server tree uses under ``idle_cores`` over ``window_s`` (at most ``max_s``).

    Returns:
        Seconds waited (at least one window).
    """
    started = time.monotonic()
    before = sample_tree(root_pid)
    while True:
        time.sleep(window_s)
        after = sample_tree(root_pid)
        cores = server_usage(before, after, 0, window_s)["cpu_cores"]
        if cores < idle_cores or time.monotonic() - started >= max_s:
            return round(time.monotonic() - started, 2)
        before = after


# Rates and the search


def meets_slo(result: Mapping[str, Any], settings: BenchSettings) -> bool:
    """Whether a rate kept p99 under the SLO with errors at most ``max_error_rate``."""
    p99 = result["latency_ms"]["p99"]
    return (
        p99 is not None
        and p99 < settings.slo_p99_ms
        and result["error_rate"] <= settings.max_error_rate
    )


def measure_rate(
    server: ServerHandle,
    mix: Sequence[RequestTemplate],
    rate: float,
    duration_s: float,
    settings: BenchSettings,
) -> dict[str, Any]:
    """One fixed-rate run with the server tree's CPU and memory sampled around it."""
    load = LoadSettings(
        rate=rate,
        duration_s=duration_s,
        timeout_s=settings.timeout_s,
        max_in_flight=settings.max_in_flight,
        seed=settings.seed,
    )
    started_at = _now()
    before = sample_tree(server.process.pid)
    result = run_load(server.base_url, mix, load)
    after = sample_tree(server.process.pid)
    summary = {"started_at": started_at, **summarize(result)}
    summary["server"] = server_usage(before, after, summary["answered"], result.elapsed_s)
    summary["meets_slo"] = meets_slo(summary, settings)
    summary["drain_s"] = wait_idle(
        server.process.pid, max_s=settings.drain_max_s, idle_cores=settings.idle_cores
    )
    return summary


def rate_line(name: str, summary: Mapping[str, Any]) -> str:
    """One progress line for a finished rate."""
    latency, server = summary["latency_ms"], summary["server"]
    cpu = server["cpu_ms_per_request"]
    return (
        f"{name}: {summary['target_rps']:g} rps for {summary['duration_s']:g} s -> "
        f"{summary['achieved_rps']:g} rps ok, p50 {latency['p50']} ms, p99 {latency['p99']} ms, "
        f"errors {summary['errors']['total']}/{summary['sent']}, "
        f"cpu {cpu if cpu is None else f'{cpu:.1f}'} ms/request, "
        f"rss/worker {server['rss_mb_per_worker']} MB, drained in {summary['drain_s']} s"
        + ("" if summary["meets_slo"] else " (misses the SLO)")
    )


def next_search_rate(lo: float | None, hi: float | None, settings: BenchSettings) -> float | None:
    """The next rate to try given the best passing and worst failing rates so far.

    Grows past a pass by ``search_growth``, halves below a failure, else bisects; None once
    the bracket is narrower than ``search_resolution_rps``.
    """
    if lo is None and hi is None:
        return None
    if hi is None:
        return float(round(lo * settings.search_growth))
    if lo is None:
        return float(round(hi / 2)) if hi / 2 >= 1 else None
    if hi - lo <= settings.search_resolution_rps:
        return None
    return float(round((lo + hi) / 2))


def step_search(
    measure: Callable[[float], dict[str, Any]],
    fixed: Sequence[Mapping[str, Any]],
    settings: BenchSettings,
) -> dict[str, Any]:
    """Bounded search for the highest rate meeting the SLO, starting from the fixed rates.

    Args:
        measure: Runs one rate and returns its summary (with ``meets_slo``).
        fixed: Summaries of the fixed rates, used as the first bracket.
        settings: SLO, step count and search shape.

    Returns:
        The best passing rate (None if none passed), the first failing one, and each step.
    """
    passed = [r["target_rps"] for r in fixed if r["meets_slo"]]
    lo = max(passed, default=None)
    failed = [r["target_rps"] for r in fixed if not r["meets_slo"]]
    hi = min((rate for rate in failed if lo is None or rate > lo), default=None)
    steps = []
    for _ in range(settings.search_steps):
        rate = next_search_rate(lo, hi, settings)
        if rate is None:
            break
        step = measure(rate)
        steps.append(step)
        lo, hi = (rate, hi) if step["meets_slo"] else (lo, rate)
    return {
        "slo_p99_ms": settings.slo_p99_ms,
        "max_error_rate": settings.max_error_rate,
        "max_rate_rps": lo,
        "first_failing_rps": hi,
        "steps": steps,
    }


Probe = Callable[[ServerHandle], dict[str, Any]]


def _quiet(message: str) -> None:
    return None


def bench_server(
    target: str,
    mix: Sequence[RequestTemplate],
    *,
    working_dir: Path,
    env: Mapping[str, str] | None,
    settings: BenchSettings,
    search: bool,
    probes: Mapping[str, Probe] | None = None,
    log: Callable[[str], None] = _quiet,
) -> dict[str, Any]:
    """Start one server, warm it up, run the probes, the fixed rates and optionally the search.

    Args:
        target: ``path/to/service.py:Class`` relative to ``working_dir``.
        mix: Request templates for every rate.
        working_dir: Directory the server runs in.
        env: Extra environment for the server.
        settings: Rates, durations, SLO, workers.
        search: Whether to step-search the highest rate meeting the SLO.
        probes: Measurements run on the warm, idle server before the rates, by name.
        log: Receives one progress line per step.

    Returns:
        The server's startup time, idle memory, fixed-rate results, search and probes.
    """
    name = service_name(target)
    log(f"{name}: starting {target} with {settings.workers} worker(s)")
    with bentoml_server(
        target,
        working_dir=working_dir,
        env=env,
        workers=settings.workers,
        ready_timeout_s=settings.ready_timeout_s,
    ) as server:
        log(f"{name}: ready in {server.startup_s:.1f} s")
        idle = memory_usage(sample_tree(server.process.pid))
        warmup_drain_s = None
        if settings.warmup_s > 0:
            warmup = LoadSettings(
                rate=settings.warmup_rate,
                duration_s=settings.warmup_s,
                timeout_s=settings.timeout_s,
                max_in_flight=settings.max_in_flight,
                seed=settings.seed,
            )
            run_load(server.base_url, mix, warmup)
            warmup_drain_s = wait_idle(
                server.process.pid, max_s=settings.drain_max_s, idle_cores=settings.idle_cores
            )
            log(f"{name}: warmed up ({settings.warmup_rate:g} rps for {settings.warmup_s:g} s)")
        measured = {}
        for probe_name, probe in (probes or {}).items():
            log(f"{name}: measuring {probe_name}")
            measured[probe_name] = probe(server)

        def measure(rate: float, duration_s: float = settings.search_duration_s) -> dict:
            log(f"{name}: {rate:g} rps for {duration_s:g} s ...")
            summary = measure_rate(server, mix, rate, duration_s, settings)
            log(rate_line(name, summary))
            return summary

        fixed = [measure(rate, settings.duration_s) for rate in settings.rates]
        found = step_search(measure, fixed, settings) if search else None
        if found is not None:
            best = found["max_rate_rps"]
            log(f"{name}: highest rate with p99 < {settings.slo_p99_ms:g} ms: {best} rps")
    return {
        "target": target,
        "workers": settings.workers,
        "startup_s": server.startup_s,
        "idle": idle,
        "warmup_drain_s": warmup_drain_s,
        "fixed": fixed,
        "search": found,
        "probes": measured,
    }


# The traffic


def traffic_ids(state: Any, seed: int = 0) -> tuple[list[int], list[int]]:
    """Known users and products of a served model's serving state, for the load's mix.

    Known users are the profiles with at least one product before the fit (so the warm
    path is exercised), shuffled with ``seed`` so that the mix's in-session users (its
    first ones) are a random sample; products are those launched by the fit.

    Args:
        state: A :class:`~shoprank.training.bundle.ServingState`.
        seed: Seed of the shuffle.

    Returns:
        (known user ids, product ids), both as plain ints.
    """
    import numpy as np

    ids = state.users.index.to_numpy(np.int64)
    warm = ids[state.recent_of(ids)[:, 0] >= 0]
    users = warm if len(warm) else ids
    users = np.random.default_rng(seed).permutation(users)
    products = np.flatnonzero(state.catalog.launched_mask(state.fitted_at))
    return [int(u) for u in users], [int(p) for p in products]


# The report


def recommend_only(mix: Sequence[RequestTemplate]) -> list[RequestTemplate]:
    """The templates of ``mix`` that call ``/recommend`` (all the floor serves)."""
    kept = [t for t in mix if t.path.rstrip("/") == "/recommend"]
    if not kept:
        raise ValueError("the mix has no /recommend template for the floor")
    return kept


def machine_info() -> dict[str, Any]:
    """CPU count, memory and versions of the machine the benchmark ran on."""
    from importlib.metadata import version

    return {
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": len(os.sched_getaffinity(0)),
        "memory_total_mb": round(psutil.virtual_memory().total / _MB),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "bentoml": version("bentoml"),
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_report(report: Mapping[str, Any], path: Path) -> Path:
    """Write ``report`` as indented JSON through a temporary file, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    tmp.replace(path)
    return path


def run_serving_bench(
    target: str,
    report_path: Path,
    *,
    mix: Sequence[RequestTemplate],
    working_dir: Path,
    env: Mapping[str, str] | None = None,
    settings: BenchSettings | None = None,
    floor_target: str | None = FLOOR_TARGET,
    floor_mix: Sequence[RequestTemplate] | None = None,
    search: bool | None = None,
    probes: Mapping[str, Probe] | None = None,
    log: Callable[[str], None] = _quiet,
) -> dict[str, Any]:
    """Benchmark ``target`` and then the framework floor, one server at a time.

    Args:
        target: The service, ``path/to/service.py:Class`` relative to ``working_dir``.
        report_path: Where the JSON report goes (e.g. ``reports/bench_serving.json``).
        mix: Request templates for the service (see ``loadgen.default_mix``).
        working_dir: Directory both servers run in (the repository root).
        env: Extra environment for both servers.
        settings: Rates, durations, SLO and workers; defaults to ``BenchSettings()``.
        floor_target: The floor service, or None to skip it.
        floor_mix: Templates for the floor; defaults to the ``/recommend`` part of ``mix``.
        search: Whether to step-search the service (default: when ``search_steps > 0``).
        probes: Measurements of the warm service before its rates; each result goes into
            the report under its name (e.g. ``event_delay``).
        log: Receives one progress line per step.

    Returns:
        The report that was written.
    """
    settings = settings or BenchSettings()
    search = settings.search_steps > 0 if search is None else search
    started_at, started = _now(), time.monotonic()
    common = {"working_dir": working_dir, "env": env, "settings": settings, "log": log}
    service = bench_server(target, mix, search=search, probes=probes, **common)
    measured = service.pop("probes")
    floor = None
    if floor_target is not None:
        floor_templates = floor_mix or recommend_only(mix)
        floor = bench_server(floor_target, floor_templates, search=False, **common)
        floor.pop("probes")
    report = {
        "schema_version": 1,
        "started_at": started_at,
        "finished_at": _now(),
        "wall_s": round(time.monotonic() - started, 1),
        "machine": machine_info(),
        "settings": asdict(settings),
        "service": service,
        "floor": floor,
        **measured,
    }
    write_report(report, report_path)
    return report
