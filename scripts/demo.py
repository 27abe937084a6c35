"""Run the whole platform on one machine with nothing but Python.

Embedded defaults: SQLite for the database, Celery on the filesystem transport (no broker
server), a file cache, and the Meta sandbox standing in for Meta. Starts the web server, a real
Celery worker with its beat scheduler, and the sandbox; stops them all on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("VAR_DIR", ROOT / "var"))
PORT = int(os.environ.get("DEMO_PORT", "8000"))
SANDBOX_PORT = int(os.environ.get("DEMO_SANDBOX_PORT", "8765"))
SANDBOX_URL = f"http://127.0.0.1:{SANDBOX_PORT}"


def _env() -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "VAR_DIR": str(VAR),
        "SITE_URL": f"http://127.0.0.1:{PORT}",
        "ACCOUNT_EMAIL_VERIFICATION": os.environ.get("ACCOUNT_EMAIL_VERIFICATION", "mandatory"),
        # Partner event callbacks may go to receivers on this machine in the demo.
        "CALLBACKS_ALLOW_PRIVATE_URLS": "true",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"):
        env.pop(name, None)  # the demo always runs on the embedded defaults
    # The sandbox's default world stands in for the Meta apps: these are its ids and secrets.
    env.update(
        META_GRAPH_URL=f"{SANDBOX_URL}/facebook",
        META_INSTAGRAM_GRAPH_URL=f"{SANDBOX_URL}/instagram",
        # The sandbox's own login dialogs stand in for Facebook's and Instagram's.
        META_FACEBOOK_DIALOG_URL=f"{SANDBOX_URL}/facebook",
        META_INSTAGRAM_AUTHORIZE_URL=f"{SANDBOX_URL}/instagram/oauth/authorize",
        META_INSTAGRAM_API_URL=f"{SANDBOX_URL}/instagram",
        META_APP_ID="880000000000001",
        META_APP_SECRET="sbx0meta0app0secret0000000000001",  # noqa: S106 (sandbox world)
        META_INSTAGRAM_APP_ID="990000000000001",
        META_INSTAGRAM_APP_SECRET="sbx0instagram0app0secret00000001",  # noqa: S106
        META_WEBHOOK_VERIFY_TOKEN=_verify_token(),
    )
    return env


def _verify_token() -> str:
    path = VAR / "webhook-verify-token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
    return path.read_text().strip()


def _sandbox_control(path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(  # noqa: S310 (local URL)
        f"{SANDBOX_URL}/_sandbox/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        return dict(json.loads(response.read() or b"{}"))


def _run(*args: str) -> str:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=_env(), check=True, capture_output=True, text=True
    ).stdout


def _wait_http(url: str, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (local URL)
                return True
        except OSError:
            time.sleep(0.5)
    return False


def main() -> int:
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "broker" / "out").mkdir(parents=True, exist_ok=True)
    (VAR / "broker" / "processed").mkdir(parents=True, exist_ok=True)
    (VAR / "broker" / "control").mkdir(parents=True, exist_ok=True)
    print("Preparing the database and static files…", flush=True)
    _run("manage.py", "migrate", "--noinput")
    _run("manage.py", "collectstatic", "--noinput")
    seeded = json.loads(_run("manage.py", "demo_seed").strip().splitlines()[-1])

    logs = VAR / "logs"
    logs.mkdir(exist_ok=True)
    commands: dict[str, list[str]] = {
        "web": [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
        ],
        # One worker for every queue: the demo's load is one person clicking. Production runs a
        # pool per queue group (Procfile: worker, worker_default, worker_outbound), so a flood
        # of background jobs never delays inbound messages.
        "worker": [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery_app",
            "worker",
            "--beat",
            "-Q",
            "webhooks,outbound,default,maintenance",
            "-P",
            "threads",
            "-c",
            "8",
            "--schedule",
            str(VAR / "celerybeat-schedule"),
            "-l",
            "INFO",
        ],
    }
    commands["relay"] = [sys.executable, "manage.py", "webhook_relay", "--interval", "0.5"]
    # Hands the inbox's replies to the worker's outbound queue.
    commands["outbound_relay"] = [
        sys.executable,
        "manage.py",
        "outbound_relay",
        "--interval",
        "0.5",
    ]
    commands["sandbox"] = [
        sys.executable,
        "-m",
        "integrations.meta.sandbox",
        "serve",
        "--port",
        str(SANDBOX_PORT),
        "--state",
        str(VAR / "sandbox.db"),
    ]
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name, command in commands.items():
        out = (logs / f"{name}.log").open("ab")
        processes[name] = subprocess.Popen(
            command, cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT
        )

    def stop(*_: object) -> None:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        sys.exit(0)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)

    if not _wait_http(f"http://127.0.0.1:{PORT}/livez"):
        print(f"The web server did not start; see {logs / 'web.log'}", file=sys.stderr)
        stop()
    if not _wait_http(f"{SANDBOX_URL}/_sandbox/health"):
        print(f"The Meta sandbox did not start; see {logs / 'sandbox.log'}", file=sys.stderr)
        stop()
    # As a developer would in Meta's app dashboard: point the app's webhooks at the platform.
    _sandbox_control(
        "webhooks/config",
        {
            "callback_url": f"http://127.0.0.1:{PORT}/webhooks/meta",
            "verify_token": _env()["META_WEBHOOK_VERIFY_TOKEN"],
            "verify": True,
        },
    )
    print(
        "\n".join(
            [
                "",
                f"  The platform is running: http://127.0.0.1:{PORT}/",
                f"  Log in as owner@demo.example / {seeded['owner@demo.example']}",
                f"  or as agent@demo.example / {seeded['agent@demo.example']}",
                f"  Partner API: http://127.0.0.1:{PORT}/api/v1/docs/",
                f"    curl -H 'Authorization: Bearer {seeded['api_key']}' "
                f"http://127.0.0.1:{PORT}/api/v1/tenant",
                f"  Health: http://127.0.0.1:{PORT}/healthz   Logs: {logs}",
                f"  Meta sandbox (stands in for Meta): {SANDBOX_URL}/_sandbox/world",
                "  Emails (sign-up verification, invitations) go to the web and worker logs.",
                "  Stop with Ctrl-C.",
                "",
            ]
        ),
        flush=True,
    )
    while True:
        for name, process in processes.items():
            if process.poll() is not None:
                print(f"{name} stopped (exit {process.returncode}); see {logs / name}.log")
                stop()
        time.sleep(1)


if __name__ == "__main__":
    raise SystemExit(main())
