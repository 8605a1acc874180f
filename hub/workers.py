"""`hub serve --workers N`: N hub processes on one port, and the parent that supervises them.

Each worker is a whole `hub serve` (its own event loop, database engine and thread pool) bound to the same
address with SO_REUSEPORT, so the kernel spreads incoming connections across them; the hub keeps no state
outside the database, so any worker can serve any call. The parent starts, watches and stops them: it
imports no gRPC and serves one thing only, the hub's metrics (hub.metrics) when metrics_listen is set.

- Metrics: the parent makes a fresh directory and starts each worker with PROMETHEUS_MULTIPROC_DIR naming
  it, so each worker's counters live in files there (prometheus_client decides that when it is imported,
  at the worker's start); the parent serves GET /metrics on metrics_listen, every worker's counts added up
  in one scrape, and removes the directory when it exits (a parent killed with SIGKILL leaves it behind).
  A worker's counts stay after it exits.

- SIGTERM or SIGINT to the parent: every worker gets SIGTERM, finishes its in-flight calls and rounds (as a
  single hub does), and the parent exits 0 once all have exited 0.
- A worker that exits on its own is a fault (a crash, the OOM killer, a failed start): the parent logs
  `worker.died`, stops the others gracefully and exits 1. It does not restart it: a restart loop would hide
  a crash that repeats; the service manager (systemd, Kubernetes) that restarts a single hub restarts this.
- The parent dying, even by SIGKILL, sends each worker SIGTERM (PR_SET_PDEATHSIG): never an orphan.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

import structlog
from prometheus_client import CollectorRegistry, multiprocess, start_http_server

log = structlog.get_logger(__name__)
PR_SET_PDEATHSIG = 1
KILL_AFTER_GRACE_S = 10.0  # beyond shutdown_grace_s, before a worker that will not stop is killed
POLL_S = 0.1


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A preexec_fn: the child gets `sig` when the parent dies (Linux), and does not start at all if the
    parent already died between fork and here."""

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def listen_port(listen: str) -> int | None:
    """The port of a `host:port` listen address, or None if it has none we can read."""
    try:
        return int(listen.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None


class WorkerMetrics:
    """The workers' counters in files of one fresh directory, served added up on `listen` by a thread."""

    def __init__(self, listen: str):
        self.directory = tempfile.mkdtemp(prefix="casinohub-metrics-")
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.directory)
        host, _, port = listen.rpartition(":")
        try:
            self._server, self._thread = start_http_server(int(port), host.strip("[]") or "127.0.0.1", registry)
        except OSError:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise OSError(f"could not bind the metrics server to {listen}: in use, or not an address here") from None
        self.port = self._server.server_port
        log.info("hub.metrics_serving", listen=listen, port=self.port, multiprocess_dir=self.directory)

    def environment(self) -> dict[str, str]:
        return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.directory}

    def exited(self, pid: int) -> None:
        multiprocess.mark_process_dead(pid, self.directory)

    def close(self) -> None:
        self._server.shutdown()  # stops serve_forever within its 0.5 s poll
        self._server.server_close()
        self._thread.join()
        shutil.rmtree(self.directory, ignore_errors=True)


def supervise(worker_command: Callable[[int], Sequence[str]], workers: int, shutdown_grace_s: float,
              metrics_listen: str = "") -> int:
    """Start `workers` processes (worker_command(index) is each one's argv), then watch them until a
    signal or a death; returns the parent's exit code. metrics_listen: where to serve their metrics."""
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    metrics = WorkerMetrics(metrics_listen) if metrics_listen else None
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        for index in range(workers):
            process = subprocess.Popen(list(worker_command(index)), preexec_fn=die_with_parent(os.getpid()),
                                       env=metrics.environment() if metrics is not None else None)
            processes.append(process)
            log.info("worker.started", worker=index, worker_pid=process.pid)
        while not stopping:
            died = next(((i, p) for i, p in enumerate(processes) if p.poll() is not None), None)
            if died is not None:
                index, process = died
                log.error("worker.died", worker=index, worker_pid=process.pid, exit_code=process.returncode,
                          action="stopping every worker")
                code = 1
                break
            time.sleep(POLL_S)
        else:
            log.info("workers.stopping", signal=signal.Signals(stopping[0]).name, grace_s=shutdown_grace_s)
    finally:
        code = max(code, _stop(processes, shutdown_grace_s))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics is not None:
            for process in processes:
                metrics.exited(process.pid)
            metrics.close()
    log.info("workers.stopped", exit_code=code)
    return code


def _stop(processes: list[subprocess.Popen[bytes]], shutdown_grace_s: float) -> int:
    """SIGTERM every live worker, wait for all, SIGKILL any past the grace; 1 if any did not exit 0."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + shutdown_grace_s + KILL_AFTER_GRACE_S
    code = 0
    for index, process in enumerate(processes):
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker.killed", worker=index, worker_pid=process.pid, reason="did not stop within grace")
            process.kill()
            process.wait()
        # -SIGTERM: our SIGTERM landed after the worker's graceful stop had already removed its handler
        # (Ctrl-C or systemd signal the whole group first); before its handler exists it serves nothing.
        if process.returncode not in (0, -signal.SIGTERM):
            code = 1
    return code


def worker_argv(config_path: str | None, workers: int, index: int) -> list[str]:
    """The command line of worker `index`: `hub serve` in worker mode, same config and environment."""
    return [sys.executable, "-m", "hub.cli", *(["--config", config_path] if config_path else []),
            "serve", "--workers", str(workers), "--worker-index", str(index)]
