"""P2: each capacity mode (whole stack, ``--web-only``, ``--bare``) keeps its own baseline.

The stepping itself runs in ``make bench-capacity``; here the bookkeeping after the steps: the
figure a run is compared with and the file ``--save-baseline`` writes belong to the run's mode,
and a regression fails only against the same mode's baseline.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import webhooks
from bench.stack import group_cpu

MODES = {"stack": {}, "web": {"web_only": True}, "bare": {"bare": True, "web_only": True}}


@pytest.fixture
def baselines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    paths = {mode: tmp_path / f"{mode}.json" for mode in MODES}
    monkeypatch.setattr(webhooks, "BASELINE", paths["stack"])
    monkeypatch.setattr(webhooks, "WEB_BASELINE", paths["web"])
    monkeypatch.setattr(webhooks, "BARE_BASELINE", paths["bare"])
    return paths


def _run(mode: str, saturation: int, *, baseline: Path | None = None) -> dict[str, Any]:
    """The results of a finished capacity run whose steps held up to ``saturation``."""
    flags = {"web_only": False, "bare": False, **MODES[mode]}
    args = argparse.Namespace(baseline=baseline or webhooks.BASELINE, **flags)
    settings = {"start": 100, "step": 100, "max": 1500, "step_seconds": 10, **flags}
    steps = [
        {"rate": rate, "requests": rate * 10, "ok_per_second": rate, "p50_ms": 3.0,
         "p99_ms": 10.0 if rate <= saturation else 900.0, "non_2xx": 0, "backlog_at_start": 0,
         "held": rate <= saturation}
        for rate in range(100, saturation + 200, 100)
    ]  # fmt: skip
    results: dict[str, Any] = {
        "date": "2026-11-26 09:00 UTC",
        "commit": "abc",
        "machine": {"cpus": 2},
        "capacity": {
            "settings": settings,
            "steps": steps,
            "baseline_path": str(webhooks.capacity_baseline(args)),
        },
    }
    webhooks._capacity_report(results)
    return results


def test_each_mode_saves_its_own_baseline(baselines: dict[str, Path]) -> None:
    for mode, saturation in (("stack", 700), ("web", 1300), ("bare", 2500)):
        assert webhooks.capacity_exit_status(_run(mode, saturation), save=True) == 0
    saved = {mode: webhooks.json.loads(path.read_text()) for mode, path in baselines.items()}
    assert {mode: b["saturation_rps"] for mode, b in saved.items()} == {
        "stack": 700, "web": 1300, "bare": 2500,
    }  # fmt: skip
    assert saved["web"]["settings"]["web_only"] is True
    assert saved["stack"]["settings"]["web_only"] is False


def test_a_regression_is_judged_against_the_same_modes_baseline(
    baselines: dict[str, Path],
) -> None:
    webhooks.capacity_exit_status(_run("stack", 700), save=True)
    webhooks.capacity_exit_status(_run("web", 1300), save=True)

    # 900 req/s is above the whole stack's baseline but 31 % below the web tier's own.
    web = _run("web", 900)
    assert web["capacity"]["baseline"]["baseline_rps"] == 1300
    assert web["verdicts"]["P2_baseline"] == "FAIL"
    assert webhooks.capacity_exit_status(web, save=False) == 1

    stack = _run("stack", 600)  # 14 % below 700: within the 20 % allowed
    assert stack["capacity"]["baseline"]["baseline_rps"] == 700
    assert webhooks.capacity_exit_status(stack, save=False) == 0


def test_a_baseline_named_on_the_command_line_wins(
    baselines: dict[str, Path], tmp_path: Path
) -> None:
    mine = tmp_path / "mine.json"
    assert webhooks.capacity_exit_status(_run("web", 800, baseline=mine), save=True) == 0
    assert webhooks.json.loads(mine.read_text())["saturation_rps"] == 800
    assert not baselines["web"].exists()


def test_an_incomplete_run_saves_no_baseline(baselines: dict[str, Path]) -> None:
    results = _run("stack", 500)
    results["incomplete"] = "stopped by the time limit"
    assert webhooks.capacity_exit_status(results, save=True) == 2
    assert not baselines["stack"].exists()


def test_the_report_shows_where_each_steps_cpu_went(baselines: dict[str, Path]) -> None:
    results = _run("stack", 300)
    results["capacity"]["steps"][0]["cpu_ms_per_request"] = webhooks.cpu_ms_per_request(
        dict.fromkeys((*webhooks.CPU_GROUPS, "machine"), 10.0),
        {**dict.fromkeys((*webhooks.CPU_GROUPS, "machine"), 10.0), "web": 11.2, "machine": 14.8},
        1000,
    )
    lines = webhooks._capacity_report(results)
    header = next(i for i, line in enumerate(lines) if line.startswith("CPU per request"))
    assert lines[header + 1].split()[2:] == [*webhooks.CPU_GROUPS, "machine"]
    assert lines[header + 2].split() == [
        "100",
        "|",
        "1.20",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "0.00",
        "4.80",
    ]


def test_a_groups_cpu_counts_the_children_it_already_reaped() -> None:
    """A gunicorn worker or pool process recycled during a step still counts."""
    code = (
        "import os, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    start = time.process_time()\n"
        "    while time.process_time() - start < 0.4: pass\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "print('reaped', flush=True)\n"
        "time.sleep(30)\n"
    )
    leader = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert leader.stdout is not None
        assert leader.stdout.readline().strip() == b"reaped"
        assert group_cpu(leader.pid) >= 0.35
    finally:
        leader.kill()
        leader.wait()
