"""The processes the bench starts (echo server, mock studio, `hub serve --workers N`) and what it reads
from outside them: RSS from /proc, the hub's counters from its stats files (hub.stats)."""

import asyncio
import contextlib
import json
import os
import pathlib
import resource
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hub.logs import error_lines
from hub.stats import ENV as STATS_ENV, WRITE_EVERY_S, Counts

STUDIO_SECRET = "bench-studio-secret"
GAME = "reelhouse:fruit-classic"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_open_files_limit(wanted: int) -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (at most the hard limit); children inherit
    it. Returns (soft, hard) as they are afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def rss_bytes(pids: Iterable[int]) -> int:
    """Sum of VmRSS of the given processes (those already gone count 0)."""
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU time the given processes (all their threads) have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return ticks / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU time: the load client's (and, for the raw baseline, its threads')."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Sampler:
    """Over a phase: the highest total RSS of some processes (sampled every `every` seconds), the CPU time
    they used, and the CPU time this process (the load client) used."""

    def __init__(self, pids: list[int], every: float = 0.5):
        self.pids = pids
        self.every = every
        self.peak = 0
        self.cpu = 0.0
        self.client_cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pids))
            await asyncio.sleep(self.every)

    async def __aenter__(self) -> "Sampler":
        self.cpu, self.client_cpu = cpu_seconds(self.pids), own_cpu_seconds()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self.peak = max(self.peak, rss_bytes(self.pids))
        self.cpu = cpu_seconds(self.pids) - self.cpu
        self.client_cpu = own_cpu_seconds() - self.client_cpu

    def per_round_ms(self, rounds: int) -> dict[str, float | None]:
        """CPU milliseconds per round, server side and client side (steadier than rates on a busy machine)."""
        if not rounds:
            return {"cpu_ms_per_round": None, "client_cpu_ms_per_round": None}
        return {"cpu_ms_per_round": round(1000 * self.cpu / rounds, 3),
                "client_cpu_ms_per_round": round(1000 * self.client_cpu / rounds, 3)}


async def start_ready(argv: list[str], log_path: pathlib.Path, env: dict[str, str] | None = None,
                      timeout: float = 60.0) -> tuple[asyncio.subprocess.Process, int]:
    """A child that prints `READY port=<N>` once listening (echo server, mock studio); stderr to log_path."""
    with open(log_path, "ab") as log:
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=log,
                                                       env=env or dict(os.environ))
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout)).decode()
    except TimeoutError:
        line = ""
    if not line.startswith("READY port="):
        await stop_process(process)
        raise RuntimeError(f"{argv[2]} did not start: {line!r}; see {log_path}")
    return process, int(line.split("=", 1)[1])


async def stop_process(process: asyncio.subprocess.Process, timeout: float = 30.0) -> int | None:
    """SIGTERM, then SIGKILL past `timeout`; the exit code."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()
    return process.returncode


@contextlib.asynccontextmanager
async def echo_server(folder: pathlib.Path) -> AsyncIterator[tuple[int, int]]:
    """The bare echo server in its own process: (port, pid)."""
    process, port = await start_ready([sys.executable, "-m", "bench.echo", "--port", "0"], folder / "echo.log")
    try:
        yield port, process.pid
    finally:
        await stop_process(process)


@contextlib.asynccontextmanager
async def mock_studio(folder: pathlib.Path) -> AsyncIterator[str]:
    """The Reelhouse mock studio in its own process, over HTTP, as `hub dev` starts it: its URL."""
    process, port = await start_ready(
        [sys.executable, "-m", "mock_providers.reelhouse", "--port", "0", "--secret", STUDIO_SECRET],
        folder / "studio.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_process(process)


@dataclass
class HubProcesses:
    """`hub serve --workers N` as `make run` starts it: a supervisor and its N worker processes."""

    folder: pathlib.Path
    config: pathlib.Path
    port: int
    workers: int
    process: asyncio.subprocess.Process
    stats_path: pathlib.Path
    log_path: pathlib.Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        """The supervisor and its workers (with one worker, the one process)."""
        return [self.process.pid, *children(self.process.pid)]

    def rss(self) -> int:
        return rss_bytes(self.pids)

    def counts(self) -> Counts:
        """Every worker's counters (hub.stats), summed from their files."""
        total = Counts()
        for path in self.stats_path.parent.glob(f"{self.stats_path.name}.*"):
            if path.suffix == ".tmp":
                continue
            data = json.loads(path.read_text())
            for name in ("statements", "commits", "batches", "commands"):
                setattr(total, name, getattr(total, name) + data.get(name, 0))
        return total

    async def settled_counts(self) -> Counts:
        """The counters once the hub is idle: after every worker has written at least once more."""
        await asyncio.sleep(2 * WRITE_EVERY_S + 0.2)
        return self.counts()

    def log_errors(self) -> list[str]:
        return [line[:300] for line in error_lines(self.log_path)]

    async def ledger_check(self, operator_id: str) -> tuple[int, str]:
        """`hub ledger check --operator X` as a separate process: (exit code, output)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "--config", str(self.config), "ledger", "check",
            "--operator", operator_id, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await asyncio.wait_for(process.communicate(), 600)
        return process.returncode or 0, output.decode(errors="replace")


def write_config(path: pathlib.Path, *, port: int, database_url: str, operator_id: str, studio_url: str,
                 extra: dict[str, int] | None = None) -> pathlib.Path:
    """The hub's defaults (as `make run`), except its port, database, operator and studio; `extra`: more
    [hub] keys (the open-streams scenario raises max_play_streams)."""
    lines = [f'listen = "127.0.0.1:{port}"', f'database_url = "{database_url}"',
             f'sandbox_operator_id = "{operator_id}"', *(f"{k} = {v}" for k, v in (extra or {}).items())]
    path.write_text("[hub]\n" + "\n".join(lines) + "\n\n"
                    f'[[providers]]\nname = "reelhouse"\nadapter = "reelhouse"\nurl = "{studio_url}"\n'
                    f'secret = "{STUDIO_SECRET}"\n')
    return path


@contextlib.asynccontextmanager
async def hub_processes(folder: pathlib.Path, database_url: str, operator_id: str, studio_url: str,
                        workers: int, extra: dict[str, int] | None = None) -> AsyncIterator[HubProcesses]:
    """`hub serve --workers N` on a free port, waited for until every worker serves; stopped with SIGTERM."""
    port = free_port()
    config = write_config(folder / "hub.toml", port=port, database_url=database_url, operator_id=operator_id,
                          studio_url=studio_url, extra=extra)
    stats_path = folder / "stats" / "hub"
    stats_path.parent.mkdir(exist_ok=True)
    log_path = folder / "hub.log"
    with open(log_path, "ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "--config", str(config), "serve", "--workers", str(workers),
            stdout=log, stderr=asyncio.subprocess.STDOUT, env={**os.environ, STATS_ENV: str(stats_path)})
    hub = HubProcesses(folder, config, port, workers, process, stats_path, log_path)
    try:
        await _wait_serving(hub)
        yield hub
    finally:
        code = await stop_process(process)
        if code not in (0, None):
            print(f"  (hub exited with {code}; log: {log_path})")


async def _wait_serving(hub: HubProcesses, timeout: float = 120.0) -> None:
    """Health SERVING, and a `hub.serving` line from every worker (health is answered by any one)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with grpc.aio.insecure_channel(hub.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while loop.time() < deadline:
            if hub.process.returncode is not None:
                raise RuntimeError(f"hub exited with {hub.process.returncode}; log: {hub.log_path}")
            serving = sum('"hub.serving"' in line for line in hub.log_path.read_text(errors="replace").splitlines())
            if serving >= hub.workers:
                try:
                    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)  # type: ignore[attr-defined]
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"hub not serving after {timeout}s; log: {hub.log_path}")
