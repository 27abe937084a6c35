"""The Redis cache backend, with one client per server for the life of the process.

Django's own backend builds a new ``redis.Redis`` for every cache call. The connection pool is
shared, but each client builds its table of reply handlers anew, which cost about a twentieth
of a webhook worker's CPU (one throttle check per inbound message). A ``redis.Redis`` is safe to
share between threads, and its pool notices a fork and opens new connections in the child, so
one client per server serves every call.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[Any, Any] = {}  # Django's connection pool -> its one client

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        base: Any = self  # Django's client: its private methods are not in the type stubs
        pool = base._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients[pool] = base._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
