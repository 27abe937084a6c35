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
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        base: Any = self  # Django's client: its private attributes are not in the type stubs
        index = base._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            pool = base._pools.get(index)
            if pool is None:
                pool = base._pools[index] = base._pool_class.from_url(
                    base._servers[index], **base._pool_options
                )
            client = self._clients[index] = base._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
