"""P4: queue isolation. The benchmark itself (``bench/queue_isolation.py``) runs by hand; these
check that it floods the queue it means to, runs the worker pools of the Procfile, and judges
its figures against the row's target. The deployment files' pools are checked in
``tests/platform/test_platform_files.py`` (one pool per queue, inbound alone in its pool).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from bench.queue_isolation import LAYOUTS, IsolationStack, QueueSampler, report, verdict
from bench.stack import Postgres
from bench.tasks import FLOOD_TASK, flood_job, flood_queue

ROOT = Path(__file__).resolve().parents[2]


def _procfile_queues() -> dict[str, set[str]]:
    queues = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        words = shlex.split(command)
        if "worker" in words and "-Q" in words:
            queues[name.strip()] = set(words[words.index("-Q") + 1].split(","))
    return queues


def _queues(command: list[str]) -> set[str]:
    return set(command[command.index("-Q") + 1].split(","))


def test_p4_flood_job_goes_to_the_default_queue() -> None:
    assert FLOOD_TASK == "bench.flood_job"
    assert flood_queue() == "default"


@pytest.mark.django_db
def test_p4_flood_job_does_a_small_database_read() -> None:
    assert flood_job(41) == 42


def test_p4_benchmark_runs_the_procfile_pools(tmp_path: Path) -> None:
    stack = IsolationStack(Postgres(), "unused", "redis://127.0.0.1:1/0", tmp_path)
    commands = stack.worker_commands()
    procfile = _procfile_queues()
    assert set(commands) == {"worker", "worker_default"}
    for name, command in commands.items():
        assert _queues(command) == procfile[name], name
        assert "bench.tasks" in command  # the flood job is known to every pool
    assert procfile["worker"] == {"webhooks"}


def test_p4_shared_layout_serves_the_same_queues_in_one_pool(tmp_path: Path) -> None:
    stack = IsolationStack(Postgres(), "unused", "redis://127.0.0.1:1/0", tmp_path, layout="shared")
    (command,) = stack.worker_commands().values()
    split = set().union(*(set(queues.split(",")) for _, queues, _ in LAYOUTS["split"]))
    assert _queues(command) == split


def test_p4_verdict_allows_twenty_percent() -> None:
    assert verdict(100.0, 80.0)
    assert verdict(100.0, 120.0)
    assert not verdict(100.0, 120.5)


def test_p4_sampler_finds_when_the_flood_was_drained() -> None:
    sampler = QueueSampler("redis://127.0.0.1:1/0", "default")
    sampler.samples = [(1.0, 0), (2.0, 9000), (3.0, 0), (4.0, 400), (5.0, 0), (6.0, 0)]
    assert sampler.emptied_after(1.5) == pytest.approx(3.5)
    assert sampler.window(1.5, 4.5) == {
        "samples": 3,
        "at_start": 9000,
        "at_end": 400,
        "max": 9000,
        "share_non_empty": 0.67,
    }
    sampler.samples = [(1.0, 5), (2.0, 3)]
    assert sampler.emptied_after(0.0) is None


def _phase(name: str, p95: float) -> dict[str, object]:
    return {
        "phase": name, "rate": 20, "sent": 600, "acked": 600, "processed": 600,
        "all_processed": True, "p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": p95, "max_ms": p95,
        "default_queue": {
            "samples": 10, "at_start": 0, "at_end": 0, "max": 0, "share_non_empty": 0.0,
        },
    }  # fmt: skip


@pytest.mark.parametrize(("flood_p95", "expected"), [(110.0, "PASS"), (150.0, "FAIL")])
def test_p4_report_states_the_verdict(flood_p95: float, expected: str) -> None:
    results = {
        "date": "today",
        "layout": "split",
        "machine": {"cpus": 2, "load_average_at_start": [1.0, 1.0, 1.0]},
        "baseline": _phase("b", 100.0),
        "flood": _phase("f", flood_p95),
        "flood_jobs": {"enqueued": 10_000, "queue": "default", "seconds": 3.0},
    }
    text = report(results)
    assert f"-> {expected}" in text
    assert results["verdict"]["P4"] == expected
