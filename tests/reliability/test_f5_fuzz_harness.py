"""F5: the coverage-guided fuzzing harness (bench/fuzz_parser.py) runs, and would catch a crash.

The hour-long run is ``make fuzz``; here every seed passes every target, undeclared errors and
broken contracts count as findings, a planted crash fails a run and is saved, and an 8-second
run of the real harness executes inputs and reports no crash.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import fuzz_parser
from integrations.meta import signatures, webhooks

ROOT = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^F5 summary: (.*)$", re.MULTILINE)

PLANTED = """\
import sys

from bench import fuzz_parser


def planted(data: bytes) -> None:
    raise KeyError("planted")


fuzz_parser.TARGETS = (fuzz_parser.Target("webhook", planted), *fuzz_parser.TARGETS[1:])
sys.exit(fuzz_parser.main())
"""


def _seed(target: str) -> bytes:
    return next(data for name, data in fuzz_parser.seeds() if name.startswith(f"{target}-"))


def test_f5_every_seed_passes_every_target() -> None:
    fuzz_parser.prepare()
    seeds = list(fuzz_parser.seeds())
    targets = {fuzz_parser.TARGETS[data[0]].name for _, data in seeds}
    assert targets == {target.name for target in fuzz_parser.TARGETS}
    for _name, data in seeds:
        fuzz_parser.one_input(data)


def test_f5_an_undeclared_error_from_a_parser_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("undeclared")

    monkeypatch.setattr(webhooks, "parse_webhook_body", broken)
    with pytest.raises(KeyError):
        fuzz_parser.one_input(_seed("webhook"))
    monkeypatch.setattr(signatures, "parse_signed_request", broken)
    with pytest.raises(KeyError):
        fuzz_parser.one_input(_seed("signed_request"))


def test_f5_a_broken_contract_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(signatures, "verify_hub_signature", lambda *args: True)
    with pytest.raises(fuzz_parser.PropertyViolation):
        fuzz_parser.one_input(fuzz_parser.TARGET_TAG["hub_signature"] + b"sha1=0\n{}")


def test_f5_a_crashing_target_fails_the_run_and_saves_the_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "planted_f5.py").write_text(PLANTED)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    crashes = tmp_path / "crashes"
    report = fuzz_parser.run(
        30, tmp_path / "corpus", crashes=crashes, echo=False, module="planted_f5"
    )
    assert report.failed
    assert len(report.crashes) == 1
    assert report.crashes[0].parent == crashes
    assert report.crashes[0].read_bytes()[:1] == fuzz_parser.TARGET_TAG["webhook"]


def test_f5_a_short_run_executes_inputs_and_finds_no_crash(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench.fuzz_parser", "--seconds", "8", "--quiet"]
    result = subprocess.run(
        [*command, "--corpus", str(tmp_path / "corpus")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    match = SUMMARY.search(result.stdout)
    assert match, result.stdout + result.stderr[-3000:]
    figures = dict(item.split("=", 1) for item in match.group(1).split())
    assert int(figures["executions"]) > 0
    assert (figures["crashes"], figures["hangs"]) == ("0", "0"), result.stdout
    assert result.returncode == 0, result.stdout
