"""The Redis cache backend keeps one client per server instead of building one per call."""

from __future__ import annotations

import os
import threading
import uuid
from unittest import mock

import redis
from django.conf import settings
from django.core.cache import caches

from config.cache import RedisCache


def _backend() -> RedisCache:
    return RedisCache(settings.REDIS_URL, {"KEY_PREFIX": f"cache-test-{uuid.uuid4().hex}"})


def test_the_configured_cache_is_this_backend() -> None:
    assert isinstance(caches["default"], RedisCache)


def test_calls_share_one_client_and_still_read_what_they_wrote() -> None:
    cache = _backend()
    real_init = redis.Redis.__init__
    with mock.patch.object(redis.Redis, "__init__", autospec=True, side_effect=real_init) as built:
        assert cache.add("throttle:1", 1, 60) is True
        assert cache.add("throttle:1", 1, 60) is False  # the throttle holds
        cache.set("name", {"first": "Ada"}, 60)
        assert cache.get("name") == {"first": "Ada"}
        assert cache.get_many(["name", "missing"]) == {"name": {"first": "Ada"}}
        cache.delete("name")
        assert cache.get("name") is None
    assert built.call_count == 1  # Django's own backend: one client per call, 7 here


def test_threads_share_the_client_safely() -> None:
    cache = _backend()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"k{n}:{i}", i, 60)
                assert cache.get(f"k{n}:{i}") == i
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_a_forked_child_gets_its_own_connection() -> None:
    cache = _backend()
    cache.set("before-fork", 1, 60)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the shared client must open a connection of its own
        try:
            ok = cache.get("before-fork") == 1 and cache.add("from-child", 2, 60)
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    assert cache.get("before-fork") == 1
    assert cache.get("from-child") == 2
