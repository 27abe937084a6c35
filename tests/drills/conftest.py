"""Drills (RELIABILITY W8-W11): the platform under process kills and service outages.

Each drill runs its own stack (``bench/stack.py``) against private services: a PostgreSQL
cluster in a temporary directory and a redis-server, both on free loopback ports, so the shared
servers the rest of the suite uses are never touched. Drills take minutes, so they are skipped
unless ``RUN_DRILLS=1`` (``make drills``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bench.stack import AppStack, PrivatePostgres, PrivateRedis, new_fernet_key, workspace

TEMPLATE_DB = "igdm_drill_template"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "drill: a reliability drill (RUN_DRILLS=1 to run)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RUN_DRILLS") == "1":
        return
    skip = pytest.mark.skip(reason="a reliability drill: run with RUN_DRILLS=1 (make drills)")
    for item in items:
        if item.get_closest_marker("drill"):
            item.add_marker(skip)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class Cluster:
    pg: PrivatePostgres
    seed: dict[str, Any]
    fernet_key: str


@pytest.fixture(scope="session")
def drill_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL cluster with a migrated, seeded template database."""
    with workspace("igdm-drill-pg-") as workdir:
        pg = PrivatePostgres()
        try:
            pg.start()
            pg.create_database(TEMPLATE_DB)
            key = new_fernet_key()
            seed = AppStack(
                pg, TEMPLATE_DB, "redis://127.0.0.1:1/0", workdir, fernet_key=key
            ).seed()
            yield Cluster(pg, seed, key)
        finally:
            pg.destroy()


@dataclass
class Drill:
    pg: PrivatePostgres
    redis: PrivateRedis
    stack: AppStack
    seed: dict[str, Any]

    @property
    def dbname(self) -> str:
        return self.stack.dbname


@pytest.fixture
def drill(drill_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[Drill]:
    """A running stack on a fresh copy of the template database and a private Redis."""
    name = "drill_" + request.node.name.split("[")[0][-40:].lower()
    with workspace("igdm-drill-") as workdir:
        redis = PrivateRedis(workdir)
        pg = drill_cluster.pg
        stack = AppStack(pg, name, redis.url, workdir, fernet_key=drill_cluster.fernet_key)
        try:
            redis.start()
            pg.create_database(name, template=TEMPLATE_DB)
            stack.start()
            yield Drill(pg, redis, stack, drill_cluster.seed)
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is None or report.failed:
                for log in ("web", "relay", "worker"):
                    print(f"--- {log} log tail ---\n{stack.log_tail(log)}")
            stack.stop()
            redis.stop()
            if not pg.running():
                pg.start()
            pg.drop_database(name)


@pytest.fixture
def report() -> Callable[..., None]:
    """Print a drill's counts in one block, so `make drills` shows them."""

    def show(row: str, **counts: Any) -> None:
        width = max(len(k) for k in counts)
        lines = [f"{row}:"] + [f"  {k:<{width}} {v}" for k, v in counts.items()]
        print("\n" + "\n".join(lines))

    return show
