"""A private copy of the platform on loopback: PostgreSQL, Redis, gunicorn, the relay, a worker.

Used by the benchmarks (``bench/webhooks.py``) and the drills (``tests/drills``). Every server
listens on 127.0.0.1 on a free port; every process runs in its own process group so it can be
stopped with everything it started, whatever state it is in.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").is_dir() else sys.executable
BIN = Path(PYTHON).parent
HOST = "127.0.0.1"

# Throwaway values for the private stack, which only ever listens on loopback.
APP_SECRET = "bench-meta-app-secret"  # noqa: S105
INSTAGRAM_APP_SECRET = "bench-instagram-app-secret"  # noqa: S105
VERIFY_TOKEN = "bench-verify-token"  # noqa: S105

WEBHOOK_TABLE = "webhooks_webhookevent"
MESSAGE_TABLE = "messaging_message"


# -- small helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except Exception:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def meta_json_bytes(payload: Any) -> bytes:
    """Serialised as Meta sends it: ASCII only, ``/`` escaped."""
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"))
    return text.replace("/", "\\/").encode("ascii")


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def message_body(*, business: str, customer: str, mid: str, text: str, ts_ms: int) -> bytes:
    """A Meta delivery with one Instagram Direct text message."""
    return meta_json_bytes(
        {
            "object": "instagram",
            "entry": [
                {
                    "id": business,
                    "time": ts_ms,
                    "messaging": [
                        {
                            "sender": {"id": customer},
                            "recipient": {"id": business},
                            "timestamp": ts_ms,
                            "message": {"mid": mid, "text": text},
                        }
                    ],
                }
            ],
        }
    )


def new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _as_postgres_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the postgres user then."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _pg_bin() -> Path:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    if not versions:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return versions[0]


def stop_group(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the group's leader (graceful stop), then SIGKILL the whole group after ``grace``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.kill(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


# -- PostgreSQL ---------------------------------------------------------------------------------


@dataclass
class Postgres:
    """A PostgreSQL server reachable on loopback with trust authentication."""

    port: int = 5432
    user: str = "postgres"

    def url(self, dbname: str) -> str:
        return f"postgres://{self.user}@{HOST}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=HOST, port=self.port, user=self.user, dbname=dbname,
            autocommit=True, connect_timeout=3,
        )  # fmt: skip

    def is_ready(self) -> bool:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def create_database(self, name: str, template: str | None = None) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            suffix = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{suffix}')

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PrivatePostgres(Postgres):
    """A throwaway cluster in a temporary directory, run as the postgres user."""

    def __init__(self) -> None:
        super().__init__(port=free_port())
        self.bin = _pg_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="igdm-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._run_as = _as_postgres_user()
        if self._run_as:
            shutil.chown(self.dir, user="postgres", group="postgres")
        self._tool(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-instructions",
        )  # fmt: skip

    def _tool(self, name: str, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self._run_as, str(self.bin / name), *args],
            check=True, capture_output=True, timeout=timeout, cwd=self.dir,
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses={HOST} -c unix_socket_directories={self.dir} "
            "-c max_connections=100 -c fsync=on -c synchronous_commit=on"
        )
        self._tool(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log),
            "-o", options,
        )  # fmt: skip
        wait_until(self.is_ready, timeout=30, what="private PostgreSQL ready")

    def stop(self, mode: str = "fast") -> None:
        self._tool("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.running():
                self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


# -- Redis --------------------------------------------------------------------------------------


class PrivateRedis:
    """A redis-server on a free port with no persistence, which can be stopped, hung, resumed."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.settimeout(1)
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server", "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", str(self.dir), "--protected-mode", "yes",
                "--logfile", str(self.dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(self.ping, timeout=15, what="private Redis ready")

    def stop(self) -> None:
        """Stop the server: clients are refused until ``start`` (its data is gone)."""
        if self.process is not None:
            stop_group(self.process, grace=5)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: connections are accepted by the kernel but nothing answers."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)


# -- the platform ---------------------------------------------------------------------------


@dataclass
class AppStack:
    """gunicorn (platform/gunicorn.conf.py), the webhook relay and a Celery worker."""

    pg: Postgres
    dbname: str
    redis_url: str
    workdir: Path
    web_port: int = field(default_factory=free_port)
    worker_concurrency: int = 2
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(60))
    fernet_key: str = field(default_factory=lambda: new_fernet_key())

    @property
    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "META_"))
            and key not in ("TEST_RUN_ID", "CACHE_KEY_PREFIX", "PYTEST_CURRENT_TEST")
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "bench.settings",
                "DJANGO_SECRET_KEY": self.secret_key,
                "FIELD_ENCRYPTION_KEYS": self.fernet_key,
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
                "DATABASE_URL": self.pg.url(self.dbname),
                "REDIS_URL": self.redis_url,
                "CACHE_KEY_PREFIX": "bench",
                "META_APP_ID": "100000000000001",
                "META_APP_SECRET": APP_SECRET,
                "META_INSTAGRAM_APP_ID": "200000000000002",
                "META_INSTAGRAM_APP_SECRET": INSTAGRAM_APP_SECRET,
                "META_WEBHOOK_VERIFY_TOKEN": VERIFY_TOKEN,
                # Nothing leaves the machine: Graph calls (profile fetches) are refused locally.
                "META_GRAPH_URL": f"http://{HOST}:9",
                "META_INSTAGRAM_GRAPH_URL": f"http://{HOST}:9",
                "META_INSTAGRAM_API_URL": f"http://{HOST}:9",
                "META_TIMEOUT_SECONDS": "2",
                "API_KEY_RATE": "1000000/min",
                "LOG_LEVEL": "WARNING",
                "VAR_DIR": str(self.workdir / "var"),
                "PORT": str(self.web_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def run_python(self, *args: str, timeout: float = 300) -> str:
        result = subprocess.run(
            [PYTHON, *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def seed(self, *, migrate: bool = True) -> dict[str, Any]:
        args = ["-m", "bench.seed"] + ([] if migrate else ["--no-migrate"])
        return dict(json.loads(self.run_python(*args).strip().splitlines()[-1]))

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    def start_web(self) -> None:
        self._spawn(
            "web",
            [
                str(BIN / "gunicorn"), "-c", str(ROOT / "platform" / "gunicorn.conf.py"),
                "--bind", f"{HOST}:{self.web_port}",
                "--access-logfile", str(self.workdir / "access.log"),
            ],
        )  # fmt: skip

    def start_relay(self) -> None:
        self._spawn("relay", [PYTHON, "manage.py", "webhook_relay", "--interval", "1"])

    def start_worker(self) -> None:
        self._spawn(
            "worker",
            [
                PYTHON, "-m", "celery", "-A", "config.celery_app", "worker",
                "-Q", "webhooks,default,maintenance", "-P", "prefork",
                "-c", str(self.worker_concurrency), "-O", "fair", "--max-tasks-per-child", "500",
                "--without-gossip", "--without-mingle", "-n", f"bench-{self.web_port}@%h",
                "-l", "WARNING",
            ],
        )  # fmt: skip

    def start(self) -> None:
        self.start_web()
        self.start_relay()
        self.start_worker()
        self.wait_web_ready()

    def wait_web_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            status, _ = http_request(self.web_port, "GET", "/livez", timeout=2)
            return status == 200

        wait_until(ready, timeout=timeout, interval=0.25, what="web server ready")
        # Every gunicorn worker has booted once it has a child list of the configured size.
        wait_until(
            lambda: len(self.web_worker_pids()) >= 2, timeout=timeout, what="gunicorn workers"
        )

    def web_worker_pids(self) -> list[int]:
        master = self.processes.get("web")
        if master is None or master.poll() is not None:
            return []
        return children_of(master.pid)

    def stop(self) -> None:
        for name in ("web", "relay", "worker"):
            process = self.processes.pop(name, None)
            if process is not None:
                stop_group(process, grace=15)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of one process (with its reaped children when asked), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                comm = (entry / "comm").read_text().strip()
            except OSError:
                continue
            if comm == name:
                found.append(int(entry.name))
    return found


def group_cpu(pgid: int) -> float:
    """CPU seconds of a process group: its live members, and the children its leader reaped
    (a recycled gunicorn worker or pool process keeps counting after it exits)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            with contextlib.suppress(OSError, ValueError):
                if os.getpgid(pid) == pgid:
                    total += proc_cpu(pid, children=pid == pgid)
    return total


def server_cpu() -> dict[str, float]:
    """CPU seconds so far of the PostgreSQL and Redis servers, whole (other databases and
    other Redis instances included); PostgreSQL backends that ended count in the postmaster's
    children time."""
    return {
        "postgresql": sum(proc_cpu(pid, children=True) for pid in pids_named("postgres")),
        "redis": sum(proc_cpu(pid) for pid in pids_named("redis-server")),
    }


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLOCK_TICKS, sum(values) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    except OSError:
        children = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
        return children


def http_request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, bytes]:
    """One blocking request on a fresh connection; status 0 when it could not be made."""
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(
            method, path, body=body or None,
            headers={"X-Forwarded-Proto": "https", **(headers or {})},
        )  # fmt: skip
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


# -- counting what the database holds ----------------------------------------------------------


@dataclass
class Counts:
    stored: int
    pending: int
    processed: int
    quarantined: int
    messages: int
    distinct_mids: int

    @property
    def duplicate_messages(self) -> int:
        return self.messages - self.distinct_mids


def db_counts(pg: Postgres, dbname: str) -> Counts:
    with pg.connect(dbname) as conn:
        row = conn.execute(
            f"""
            SELECT count(*),
                   count(*) FILTER (WHERE status = 'pending'),
                   count(*) FILTER (WHERE status = 'processed'),
                   count(*) FILTER (WHERE status = 'quarantined')
            FROM {WEBHOOK_TABLE}
            """  # noqa: S608 (constant table name)
        ).fetchone()
        messages = conn.execute(
            f"SELECT count(*), count(DISTINCT (account_id, mid)) FROM {MESSAGE_TABLE}"  # noqa: S608
        ).fetchone()
    assert row is not None
    assert messages is not None
    return Counts(*row, *messages)


def stored_digests(pg: Postgres, dbname: str) -> set[str]:
    with pg.connect(dbname) as conn:
        return {r[0] for r in conn.execute(f"SELECT body_sha256 FROM {WEBHOOK_TABLE}")}  # noqa: S608


def stored_mids(pg: Postgres, dbname: str) -> set[str]:
    with pg.connect(dbname) as conn:
        return {r[0] for r in conn.execute(f"SELECT mid FROM {MESSAGE_TABLE}")}  # noqa: S608


def events_not_processed(pg: Postgres, dbname: str) -> dict[str, str]:
    """Digest -> status of every stored event that is not (yet) processed."""
    with pg.connect(dbname) as conn:
        return dict(
            conn.execute(
                f"SELECT body_sha256, status FROM {WEBHOOK_TABLE} WHERE status <> 'processed'"  # noqa: S608
            ).fetchall()
        )


def database_connections(conn: psycopg.Connection[Any], dbname: str) -> int:
    """Client connections to ``dbname``, not counting ``conn`` itself."""
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
        " AND backend_type = 'client backend' AND pid <> pg_backend_pid()",
        (dbname,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def broker_settings(stack: AppStack) -> dict[str, Any]:
    """The stack's Celery broker keys in Redis, as kombu's Redis transport names them.

    Read from the stack's own settings (``CELERY_BROKER_TRANSPORT_OPTIONS``): kombu puts
    ``global_keyprefix`` in front of every key, and ``unacked_key`` may rename the hash of
    messages delivered to a worker and not yet acknowledged. ``prefetch_multiplier`` bounds
    how many of those a healthy worker holds (times its concurrency).
    """
    code = (
        "import json; from django.conf import settings; "
        "from kombu.transport.redis import Channel; "
        "o = settings.CELERY_BROKER_TRANSPORT_OPTIONS; p = o.get('global_keyprefix', ''); "
        "print(json.dumps({'prefix': p, "
        "'unacked': p + o.get('unacked_key', Channel.unacked_key), "
        "'unacked_index': p + o.get('unacked_index_key', Channel.unacked_index_key), "
        "'prefetch_multiplier': settings.CELERY_WORKER_PREFETCH_MULTIPLIER}))"
    )
    return dict(json.loads(stack.run_python("-c", code, timeout=60).strip().splitlines()[-1]))


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    """A temporary directory for logs and sockets, removed afterwards unless KEEP_BENCH_LOGS."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if not os.environ.get("KEEP_BENCH_LOGS"):
            shutil.rmtree(path, ignore_errors=True)


def finish_run(
    results: dict[str, Any],
    report: Callable[[dict[str, Any]], str],
    output: Path,
    began: float,
) -> int:
    """Close a benchmark run: time and load at the end, the table printed, the JSON written."""
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    text = report(results)
    print()
    print(text)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {output}")
    return 0
