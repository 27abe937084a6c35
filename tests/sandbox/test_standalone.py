"""The sandbox as its own process: CLI server with persisted state, CLI control commands."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from .conftest import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(port: int, state: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "integrations.meta.sandbox",
            "serve",
            "--port",
            str(port),
            "--state",
            str(state),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=1).ok:
                return process
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(process.stderr.read().decode() if process.stderr else "no start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _cli(port: int, *args: str) -> object:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "integrations.meta.sandbox",
            "--sandbox-url",
            f"http://127.0.0.1:{port}",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        check=True,
        timeout=30,
    )
    return json.loads(out.stdout)


def test_cli_server_persists_state_across_restarts(tmp_path: Path) -> None:
    port = _free_port()
    state = tmp_path / "sandbox.db"
    process = _start(port, state)
    try:
        me = requests.get(
            f"http://127.0.0.1:{port}/facebook/v25.0/me",
            params={"access_token": "EAAGsbxUser10000000000000001"},
            timeout=5,
        ).json()
        assert me == {"id": "10000000000000001", "name": "Dana Owner"}
        created = _cli(port, "customer-create", "erin", "--name", "Erin Walsh")
        assert isinstance(created, dict)
        sent = _cli(port, "send", "erin", "acme.store", "--text", "hello from the CLI")
        assert isinstance(sent, dict)
        assert sent["mid"].startswith("aWdf")
    finally:
        _stop(process)
    assert process.returncode == 0
    process = _start(port, state)
    try:
        world = _cli(port, "world")
        assert isinstance(world, dict)
        assert "erin" in [c["username"] for c in world["customers"]]
        conversations = _cli(port, "conversations", "--account", "acme.store")
        assert isinstance(conversations, dict)
        texts = [m["text"] for c in conversations["data"] for m in c["messages"]]
        assert "hello from the CLI" in texts
    finally:
        _stop(process)
