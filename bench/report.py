"""Figures of a run: one record per scenario and concurrency, printed as a table with each hub figure beside
its baseline as a ratio, and written as JSON plus a markdown table under bench/results/."""

import json
import pathlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from bench.load import Phase
from hub.stats import Counts

MIB = 2**20


@dataclass
class Figures:
    scenario: str  # echo | raw | engine | hub
    database: str | None  # mariadb | sqlite; None for echo
    concurrency: int
    connections: int | None = None  # raw: database connections (C capped by max_connections)
    rounds: int = 0
    seconds: float = 0.0
    rounds_per_s: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    errors: dict[str, int] = field(default_factory=dict)
    streams_lost: int = 0
    # Hub: counted in its processes (hub.stats); raw: the server's counters. COMMIT is a commit, not a statement.
    statements_per_round: float | None = None
    commits_per_round: float | None = None
    mean_batch: float | None = None  # commands per engine batch; None: no batch counted
    server_per_round: dict[str, float] | None = None  # MariaDB SHOW GLOBAL STATUS change per round
    rss_bytes: int | None = None  # peak during the phase: hub = supervisor + workers; echo = its server
    processes: int | None = None
    cpu_ms_per_round: float | None = None  # CPU time of those processes over the phase, per round
    client_cpu_ms_per_round: float | None = None  # CPU time of the load client (the bench process), per round

    @property
    def key(self) -> str:
        return self.scenario if self.database is None else f"{self.scenario} {self.database}"

    @classmethod
    def from_phase(cls, scenario: str, database: str | None, concurrency: int, phase: Phase,
                   **more: object) -> "Figures":
        return cls(scenario, database, concurrency, rounds=phase.done, seconds=round(phase.seconds, 3),
                   rounds_per_s=round(phase.rate, 1), p50_ms=_ms(phase.percentile_ms(50)),
                   p95_ms=_ms(phase.percentile_ms(95)), p99_ms=_ms(phase.percentile_ms(99)),
                   errors=dict(phase.errors), streams_lost=len(phase.lost), **more)  # type: ignore[arg-type]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def per_round(counts: Counts, rounds: int) -> dict[str, float | None]:
    if not rounds:
        return {"statements_per_round": None, "commits_per_round": None, "mean_batch": None}
    return {"statements_per_round": round(counts.statements / rounds, 2),
            "commits_per_round": round(counts.commits / rounds, 3),
            "mean_batch": round(counts.commands / counts.batches, 2) if counts.batches else None}


# -- the table --------------------------------------------------------------------------------------------

Row = tuple[str, Callable[[Figures], float | None], str | None, str | None]  # name, value, ratio vs, ratio vs


def _server(name: str) -> Callable[[Figures], float | None]:
    return lambda f: None if f.server_per_round is None else f.server_per_round.get(name)


ROWS: list[Row] = [
    ("rounds/s", lambda f: f.rounds_per_s, "echo", "raw"),
    ("latency p50 ms", lambda f: f.p50_ms, "echo", "raw"),
    ("latency p95 ms", lambda f: f.p95_ms, "echo", "raw"),
    ("latency p99 ms", lambda f: f.p99_ms, "echo", "raw"),
    ("errors", lambda f: sum(f.errors.values()), None, None),
    ("SQL statements/round", lambda f: f.statements_per_round, None, "raw"),
    ("commits/round", lambda f: f.commits_per_round, None, "raw"),
    ("server Questions/round", _server("Questions"), None, "raw"),
    ("server Com_commit/round", _server("Com_commit"), None, "raw"),
    ("mean batch size", lambda f: f.mean_batch, None, None),
    ("server CPU ms/round", lambda f: f.cpu_ms_per_round, "echo", None),
    ("client CPU ms/round", lambda f: f.client_cpu_ms_per_round, "echo", None),
    ("RSS MiB (peak)", lambda f: None if f.rss_bytes is None else f.rss_bytes / MIB, "echo", None),
]


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return ""
    ratio = value / base
    return f"{ratio:.3f}" if ratio < 1 else f"{ratio:.2f}"


def table(figures: list[Figures]) -> list[list[str]]:
    """Per concurrency: one row per figure; columns echo, raw, engine, then each hub with its ratios."""
    hubs = sorted({f.key for f in figures if f.scenario == "hub"}, key=lambda k: ("sqlite" in k, k))
    header = ["C", "figure", "echo", "raw mariadb", "engine", "/raw"]
    for hub in hubs:
        header += [hub, "/echo", "/raw"]
    rows = [header]
    for concurrency in sorted({f.concurrency for f in figures}):
        at = {f.key: f for f in figures if f.concurrency == concurrency}
        echo, raw = at.get("echo"), at.get("raw mariadb")
        for name, value, _vs_echo, vs_raw in ROWS:
            line = [str(concurrency), name]
            for baseline in ("echo", "raw mariadb"):
                figure = at.get(baseline)
                line.append(_number(value(figure)) if figure else "")
            engine = at.get("engine mariadb")
            v = value(engine) if engine else None
            line += [_number(v) if engine else "", _ratio(v, value(raw)) if raw and vs_raw else ""]
            for hub in hubs:
                figure = at.get(hub)
                v = value(figure) if figure else None
                shown = "n/a" if figure and v is None and name == "mean batch size" else _number(v)
                line += [shown if figure else "",
                         _ratio(v, value(echo)) if echo and _vs_echo else "",
                         _ratio(v, value(raw)) if raw and vs_raw else ""]
            rows.append(line)
        connections = raw.connections if raw else None
        if raw and connections != concurrency:
            rows.append([str(concurrency), "raw connections", "", str(connections), "", ""] + [""] * 3 * len(hubs))
    return rows


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        if n > 1 and row[0] != rows[n - 1][0]:
            lines.append("")
        lines.append("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths, strict=True))))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(rows[0]))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def write(folder: pathlib.Path, stem: str, document: dict[str, object], markdown: str) -> tuple[pathlib.Path, pathlib.Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{stem}.json", folder / f"{stem}.md"
    json_path.write_text(json.dumps(document, indent=2, default=_jsonable) + "\n")
    md_path.write_text(markdown + "\n")
    return json_path, md_path


def _jsonable(value: object) -> object:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)  # type: ignore[call-overload]
    raise TypeError(f"not JSON: {type(value).__name__}")
