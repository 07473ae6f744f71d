"""Run the benchmark and write its Markdown table: ``nox -s bench`` (or ``python -m``).

Each walk runs in a fresh process against a server in its own process; clients take turns
within each round so that drifts of a noisy machine hit them alike. Reported: medians of
wall time and of the walking process's CPU time, items per second, the ratios of both to
the bare-aiohttp floor of the same run, and peak RSS. ``--only NAME`` runs the named
speed scenarios alone and prints their table without writing RESULTS.md. The section of
RESULTS.md from ``KEPT_FROM`` on is written by hand (from ``breakdown.py``) and kept.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import attrs

HERE = Path(__file__).parent
RESULTS = HERE / "RESULTS.md"
#: Where the hand-written part of RESULTS.md starts; a run rewrites only what is above it.
KEPT_FROM = "\n## Where the time goes"
CLIENTS = ("ours", "ours, otel api", "floor", "openai")
#: Walked where a scenario has a CPU target: the floor with each page made into our records
#: (``parse_page``), without our pager or transport. No client yielding these validated
#: records can take less CPU time than it does.
LOWER_BOUND = "floor + records"


@attrs.frozen
class Scenario:
    """One listing to walk."""

    name: str
    items: int
    limit: int
    latency_ms: float = 0.0
    target: str = ""
    work_us: float = 0.0
    #: The most the walking process's CPU time may be, as a ratio to the floor's.
    cpu_target: str = ""


SPEED = (
    Scenario("200 pages x 100", 20_000, 100, target="<= 1.5x floor"),
    Scenario("500 pages x 10", 5_000, 10, target="<= 1.3x floor"),
    Scenario("200 pages x 100, 5 ms latency", 20_000, 100, 5.0, target="<= 1.0x floor"),
    # Not one of the targets: shows what read-ahead buys a consumer that does real work.
    Scenario("200 pages x 100, 5 ms latency, consumer 20 us/item", 20_000, 100, 5.0, work_us=20),
    # Long enough that the per-item cost, not start-up, decides both numbers.
    Scenario("1,000 pages x 100", 100_000, 100, target="<= 1.2x floor", cpu_target="<= 1.5x floor"),
)
MEMORY_SMALL = Scenario("10,000 items", 10_000, 100)
MEMORY_LARGE = Scenario("1,000,000 items", 1_000_000, 100)


@contextlib.contextmanager
def server(latency_ms: float) -> Iterator[str]:
    """Start the page server in its own process; yield its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.benchmarks.server", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.wait(timeout=10)


def walk(client: str, base_url: str, scenario: Scenario) -> dict[str, float]:
    """Run one walk in a fresh process and check its work."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.benchmarks.walk",
            client,
            base_url,
            f"bench-{scenario.items}",
            str(scenario.limit),
            str(scenario.work_us),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(output)
    total = scenario.items
    assert result["count"] == total, (client, result)
    assert result["checksum"] == total * (total + 1) // 2, (client, result)
    return result


def import_seconds(module: str) -> float:
    """Time ``import module`` in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )


def run(rounds: int, clients: tuple[str, ...], only: tuple[str, ...] = ()) -> str:
    """Run every scenario (or those named in ``only``) and return the Markdown report."""
    lines = [
        f"Run on {datetime.date.today()}: Python {platform.python_version()}, "
        f"fine-tune-ckpt {metadata.version('fine-tune-ckpt')}, "
        f"aiohttp {metadata.version('aiohttp')}, orjson {metadata.version('orjson')}"
        + (f", openai {metadata.version('openai')}" if "openai" in clients else "")
        + f"; {rounds} rounds, medians; each walk in a fresh process.",
        "",
        "| scenario | client | median s | items/s | ratio to floor | CPU s | CPU ratio "
        "| peak RSS MiB | target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in SPEED:
        if only and scenario.name not in only:
            continue
        walkers = (*clients, LOWER_BOUND) if scenario.cpu_target else clients
        times: dict[str, list[float]] = {client: [] for client in walkers}
        cpus: dict[str, list[float]] = {client: [] for client in walkers}
        peaks: dict[str, list[float]] = {client: [] for client in walkers}
        with server(scenario.latency_ms) as base_url:
            walk("floor", base_url, scenario)  # warm the server's page cache
            for _ in range(rounds):
                for client in walkers:
                    result = walk(client, base_url, scenario)
                    times[client].append(result["seconds"])
                    cpus[client].append(result["cpu_seconds"])
                    peaks[client].append(result["peak_kib"] / 1024)
        floor = statistics.median(times["floor"])
        floor_cpu = statistics.median(cpus["floor"])
        for client in walkers:
            median = statistics.median(times[client])
            cpu = statistics.median(cpus[client])
            target = _target(scenario) if client.startswith("ours") else ""
            lines.append(
                f"| {scenario.name} | {client} | {median:.3f} | {scenario.items / median:,.0f} "
                f"| {median / floor:.2f}x | {cpu:.3f} | {cpu / floor_cpu:.2f}x "
                f"| {max(peaks[client]):.1f} | {target} |"
            )
        print(lines[-len(walkers) :], file=sys.stderr)
    if only:
        return "\n".join(lines) + "\n"

    lines += ["", "| memory walk (ours) | peak RSS MiB | target |", "|---|---:|---|"]
    with server(0.0) as base_url:
        small = max(walk("ours", base_url, MEMORY_SMALL)["peak_kib"] for _ in range(2)) / 1024
        large = walk("ours", base_url, MEMORY_LARGE)["peak_kib"] / 1024
    lines.append(f"| {MEMORY_SMALL.name} | {small:.1f} | |")
    lines.append(
        f"| {MEMORY_LARGE.name} | {large:.1f} | within 10 MiB of 10,000: {large - small:+.1f} MiB |"
    )

    ours, bare = [], []
    for _ in range(max(rounds, 5) * 2):
        ours.append(import_seconds("fine_tune_ckpt"))
        bare.append(import_seconds("aiohttp"))
    ratio = statistics.median(ours) / statistics.median(bare)
    lines += [
        "",
        "| import | median ms | ratio | target |",
        "|---|---:|---:|---|",
        f"| `import aiohttp` | {statistics.median(bare) * 1000:.1f} | 1.00x | |",
        f"| `import fine_tune_ckpt` | {statistics.median(ours) * 1000:.1f} | {ratio:.2f}x "
        "| <= 1.3x |",
    ]
    return "\n".join(lines) + "\n"


def _sweep(clients: tuple[str, ...]) -> str:
    """The many-jobs sweep against the rate-limited fake (``sweep.py``), one round."""
    from tests.benchmarks import sweep

    return sweep.report(1, tuple(client for client in ("ours", "openai") if client in clients))


def _target(scenario: Scenario) -> str:
    """The targets of a scenario's row: wall time, and CPU time when it has one."""
    if not scenario.cpu_target:
        return scenario.target
    return f"{scenario.target}; CPU {scenario.cpu_target}"


def main() -> None:
    """Parse options, run, print the table and write it to RESULTS.md."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-openai", action="store_true", help="leave out the official SDK")
    parser.add_argument(
        "--skip-sweep", action="store_true", help="leave out the 2,000-job rate-limited sweep"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[scenario.name for scenario in SPEED],
        metavar="NAME",
        help="run only this speed scenario (repeatable); prints, does not write RESULTS.md",
    )
    args = parser.parse_args()
    clients = tuple(c for c in CLIENTS if not (args.skip_openai and c == "openai"))
    if importlib.util.find_spec("opentelemetry") is None:
        clients = tuple(c for c in clients if c != "ours, otel api")
    started = time.perf_counter()
    report = run(args.rounds, clients, tuple(args.only))
    if not args.only and not args.skip_sweep:
        report += "\n" + _sweep(clients)
    print(report)
    if args.only:
        seconds = time.perf_counter() - started
        print(f"not written to {RESULTS}: a partial run, {seconds:.0f} s", file=sys.stderr)
        return
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    kept = previous[previous.index(KEPT_FROM) :] if KEPT_FROM in previous else ""
    RESULTS.write_text("# Benchmark results\n\n" + report + kept)
    print(f"written to {RESULTS} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
