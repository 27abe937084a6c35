"""The demo command starts the whole platform on embedded defaults and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (local URL)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_demo_serves_the_platform_with_a_worker_and_the_sandbox(tmp_path: Path) -> None:
    port, sandbox_port = _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        VAR_DIR=str(tmp_path / "var"), DEMO_PORT=str(port), DEMO_SANDBOX_PORT=str(sandbox_port)
    )
    log = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen(
        [sys.executable, "scripts/demo.py"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 120
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            assert demo.poll() is None, (tmp_path / "demo.out").read_text()
            if "is running" in (tmp_path / "demo.out").read_text():
                status, body = _get(f"http://127.0.0.1:{port}/healthz")
                if status == 200:
                    health = json.loads(body)
                    break
            time.sleep(0.5)
        assert health.get("ok"), (tmp_path / "demo.out").read_text()

        printed = (tmp_path / "demo.out").read_text()
        assert "owner@demo.example" in printed
        credentials = json.loads((tmp_path / "var" / "demo-credentials.json").read_text())
        status, body = _get(
            f"http://127.0.0.1:{port}/api/v1/tenant",
            {"Authorization": f"Bearer {credentials['api_key']}"},
        )
        assert status == 200
        assert json.loads(body)["name"] == "Demo Agency"
        status, _ = _get(f"http://127.0.0.1:{port}/accounts/login/")
        assert status == 200
        status, _ = _get(f"http://127.0.0.1:{sandbox_port}/_sandbox/health")
        assert status == 200
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            demo.kill()
        log.close()
    assert demo.returncode == 0
