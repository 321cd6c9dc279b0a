"""The Redis client of a cluster process: one pool of at most `REDIS_CONNECTIONS` connections
that a command waits on when all are busy (`BlockingConnectionPool`, up to
`POOL_WAIT_SECONDS`), instead of redis-py's default pool, which refuses a command beyond 100
connections in use (``MaxConnectionsError``: a 500 for the request that hit it). A front-end
under thousands of concurrent requests so queues its Redis commands rather than failing them,
and the run's Redis sees a bounded number of connections per process.
"""

from __future__ import annotations

import redis.asyncio as aioredis

REDIS_CONNECTIONS = 256
"""Connections at most per process (Redis's own default limit is 10 000 clients)."""
POOL_WAIT_SECONDS = 20.0
"""How long a command waits for a free connection before it fails."""


def connect(url: str, connections: int = REDIS_CONNECTIONS) -> aioredis.Redis:
    """A client of the Redis at `url` with a blocking pool of `connections`."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=connections,
                                                    timeout=POOL_WAIT_SECONDS)
    return aioredis.Redis(connection_pool=pool)
