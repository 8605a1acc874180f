"""`make bench` (`python -m bench`): the hub's throughput, latency and memory beside its baselines, in one run.

  (a) echo     a bare grpc.aio bidi-stream server in its own process, driven by the hub's load client
  (b) raw      pymysql, one transaction per bet (lock the row, update, insert, commit) on the same MariaDB
  (c) engine   the settlement engine alone (bench.engine_alone: no gRPC, no studio), against (b)
  (d) hub      the mock studio over HTTP and `hub serve --workers N` (N = CPUs), real processes, on MariaDB
               and SQLite, C Play streams each betting 1.00 and awaiting `settled`, back to back
  streams      N Play streams open at once: the hub's RSS, then one bet on each, every one answered

Correctness is checked as it goes (echo replies, the raw table's sums, the engine's ledger, every player's
balance against its events, `hub ledger check`); a failed check or a crashed scenario exits 1: no speed for wrong results.
`--smoke` runs everything tiny (CI, no thresholds). Results: bench/results/<timestamp>.json and .md.
"""

import argparse
import asyncio
import contextlib
import datetime
import logging
import os
import pathlib
import platform
import shutil
import signal
import sys
import tempfile
import traceback

import grpc
import structlog

from bench import baselines, echo as echo_module
from bench.databases import MariaDB, ServerCounters, sqlite_url, throwaway_mariadb
from bench.engine import engine_alone
from bench.hub_play import HubRun, hub_play
from bench.procs import raise_open_files_limit
from bench.report import MIB, Figures, per_round, render_markdown, render_text, table, write
from bench.streams import StreamsRun, open_streams
from hub.server import CORE_OPTIONS

SCENARIOS = ("echo", "raw", "engine", "hub", "streams")
RESULTS = pathlib.Path(__file__).parent / "results"
CAVEATS = [
    "one shared machine: the load client (this process, one event loop), the hub, the studio and the "
    "database compete for the same cores, so absolute figures are noisy; compare ratios within a run",
    "MariaDB server counters are server-wide: they hold whatever else used the server during a phase",
    "the echo server is one process; the hub runs N workers and a supervisor",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--smoke", action="store_true",
                        help="everything tiny, for CI: C=4, 1.5 s phases, 200 open streams")
    parser.add_argument("--seconds", type=float, help="timed phase length (default 10; smoke 1.5)")
    parser.add_argument("--concurrency", type=int, action="append", metavar="C",
                        help="concurrent streams, repeatable (default 16 64 256; smoke 4)")
    parser.add_argument("--db", choices=("mariadb", "sqlite"), action="append", help="hub databases (default both)")
    parser.add_argument("--streams", type=int, help="open streams scenario size (default 10000; smoke 200; 0 skips)")
    parser.add_argument("--streams-db", choices=("mariadb", "sqlite"), default="sqlite",
                        help="database of the open-streams hub (default sqlite, as `make run`)")
    parser.add_argument("--only", choices=SCENARIOS, action="append", help="run only these scenarios")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                        help="hub worker processes (default: one per CPU, as `make run`)")
    parser.add_argument("--channels", type=int, default=8, help="client connections the streams share")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS, help="folder for the JSON and markdown")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (hub, studio and echo logs)")
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (1.5 if args.smoke else 10.0)
    args.concurrency = args.concurrency or ([4] if args.smoke else [16, 64, 256])
    args.db = args.db or ["mariadb", "sqlite"]
    args.streams = (200 if args.smoke else 10_000) if args.streams is None else args.streams
    args.only = args.only or list(SCENARIOS)
    return args


def hub_figures(run: HubRun) -> list[Figures]:
    return [Figures.from_phase("hub", run.database, p.concurrency, p.phase, **per_round(p.counts, p.phase.done),
                               server_per_round=p.server, rss_bytes=p.rss_peak, processes=p.processes,
                               **p.cpu_ms)
            for p in run.phases]


def streams_text(run: StreamsRun) -> str:
    processes = ", ".join(f"{rss / MIB:.0f}" for rss in run.rss_by_process.values())
    errors = ", ".join(f"{k} x{v}" for k, v in run.errors.most_common()) or "none"
    return "\n".join([
        f"open streams ({run.database}; max_play_streams raised to {run.max_play_streams} and the operator's "
        f"rate limit off in the hub's config file; open files soft/hard {run.open_files[0]}/{run.open_files[1]}):",
        f"  streams opened       {run.opened} of {run.streams} in {run.open_seconds:.1f} s "
        f"({run.players} players, {run.channels} channels)",
        f"  hub RSS, all open    {run.rss_open / MIB:.0f} MiB in all ({processes} MiB: supervisor, workers); "
        f"{run.rss_open / 2**30 / 1.5:.2f} of 1.5 GiB",
        f"  bets answered        {run.answered} of {run.streams} settled in {run.bet_seconds:.1f} s; errors: {errors}",
        f"  hub RSS peak, bets   {run.rss_peak / MIB:.0f} MiB; the client side (this process) {run.client_rss / MIB:.0f} MiB",
    ])


async def run(args: argparse.Namespace) -> int:
    # SIGTERM cancels the run like Ctrl-C, so every scenario's `async with` stops the processes it started
    # (killed outright, the bench once left a hub and a studio running, holding database connections).
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    if echo_module.CORE_OPTIONS != CORE_OPTIONS:
        raise SystemExit("bench.echo.CORE_OPTIONS differs from hub.server.CORE_OPTIONS: copy them again")
    started = datetime.datetime.now(datetime.UTC)
    open_files = raise_open_files_limit(args.streams + 4096)
    print(f"casinohub bench{' (smoke)' if args.smoke else ''}: C={args.concurrency}, {args.seconds:g} s per "
          f"phase, hub --workers {args.workers}, {args.channels} client connections, databases {args.db}, "
          f"open streams {args.streams} on {args.streams_db}")
    figures: list[Figures] = []
    problems: list[str] = []
    warnings: list[str] = []
    streams: StreamsRun | None = None
    crashed = False
    wants = set(args.only)
    needs_mariadb = bool(wants & {"raw", "engine"}) or ("hub" in wants and "mariadb" in args.db) or (
        "streams" in wants and args.streams and args.streams_db == "mariadb")
    temp = tempfile.mkdtemp(prefix="casinohub-bench-")
    folder = pathlib.Path(temp)
    try:
        with contextlib.ExitStack() as stack:
            def mariadb() -> MariaDB | None:
                return stack.enter_context(throwaway_mariadb()) if needs_mariadb else None

            first = mariadb()
            server = stack.enter_context(contextlib.closing(ServerCounters(first))) if first else None
            if "echo" in wants:
                found, failed = await baselines.echo(_sub(folder, "echo"), args.concurrency, args.seconds,
                                                     args.channels)
                figures += found
                problems += failed
            if "raw" in wants and first and server:
                found, failed = await baselines.raw_bets(first, args.concurrency, args.seconds, server)
                figures += found
                problems += failed
            if "engine" in wants:
                engine_db = mariadb()
                for concurrency in args.concurrency if engine_db else []:
                    assert engine_db is not None
                    found_engine, failed = await engine_alone(engine_db, concurrency, args.seconds)
                    figures.append(found_engine)
                    problems += failed
                    print(f"  engine C={concurrency}: {found_engine.rounds_per_s:.0f} rounds/s")
            if "hub" in wants:
                for name in args.db:
                    db = mariadb() if name == "mariadb" else None
                    if name == "mariadb" and db is None:
                        continue
                    url = db.url if db else sqlite_url(_sub(folder, "sqlite"))
                    hub = await hub_play(name, url, _sub(folder, f"hub-{name}"), args.concurrency, args.seconds,
                                         args.workers, args.channels, server if db else None)
                    figures += hub_figures(hub)
                    problems += hub.problems
                    warnings += hub.warnings
            if "streams" in wants and args.streams:
                db = mariadb() if args.streams_db == "mariadb" else None
                if args.streams_db == "sqlite" or db:
                    url = db.url if db else sqlite_url(_sub(folder, "streams-sqlite"))
                    streams = await open_streams(args.streams_db, url, _sub(folder, "streams"), args.streams,
                                                 args.workers)
                    problems += streams.problems
                    warnings += streams.warnings
    except Exception:  # noqa: BLE001 - a crashed scenario fails the run, with what was measured so far
        traceback.print_exc()
        problems.append("a scenario crashed (traceback above)")
        crashed = True
    finally:
        if args.keep or crashed:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)

    rows = table(figures)
    print()
    if figures:
        print(render_text(rows))
    errors = [f"  {f.key} C={f.concurrency}: " + ", ".join(f"{k} x{v}" for k, v in sorted(f.errors.items()))
              for f in figures if f.errors]
    print("errors by status:" if errors else "errors: none", *errors, sep="\n")
    if streams:
        print(streams_text(streams))
    for warning in warnings:
        print(f"warning: {warning}")
    print("caveats: " + "; ".join(CAVEATS))
    ok = not problems
    print("correctness: OK (echo replies; raw sums; every player's balance matches its events; hub ledger check "
          "clean for the engine's and the hubs' databases)" if ok else "correctness: FAILED")
    for problem in problems:
        print(f"  - {problem}")

    finished = datetime.datetime.now(datetime.UTC)
    stem = started.strftime("%Y%m%d-%H%M%S") + ("-smoke" if args.smoke else "")
    document = {
        "started": started.isoformat(), "finished": finished.isoformat(), "smoke": args.smoke, "ok": ok,
        "settings": {"seconds": args.seconds, "concurrency": args.concurrency, "databases": args.db,
                     "workers": args.workers, "channels": args.channels, "streams": args.streams,
                     "streams_db": args.streams_db, "scenarios": args.only, "open_files": list(open_files),
                     "cpus": len(os.sched_getaffinity(0)), "python": platform.python_version(),
                     "grpc": grpc.__version__},
        "figures": figures, "streams": streams, "problems": problems,
        "warnings": warnings, "caveats": CAVEATS,
    }
    markdown = "\n\n".join(part for part in (
        f"# casinohub bench {stem}", render_markdown(rows) if figures else "",
        "```\n" + streams_text(streams) + "\n```" if streams else "",
        "correctness: " + ("OK" if ok else "FAILED\n\n" + "\n".join(f"- {p}" for p in problems)),
        "caveats:\n\n" + "\n".join(f"- {c}" for c in CAVEATS)) if part)
    json_path, md_path = write(args.results, stem, document, markdown)
    print(f"results: {json_path} and {md_path.name}")
    return 0 if ok else 1


def _sub(folder: pathlib.Path, name: str) -> pathlib.Path:
    path = folder / name
    path.mkdir(exist_ok=True)
    return path


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # progress shows in CI logs too
    # The engine scenario runs hub code in this process: its info lines would break up the table.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        return asyncio.run(run(parse_args()))
    except asyncio.CancelledError:  # SIGTERM: the children are stopped by now
        print("bench: stopped by SIGTERM", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
