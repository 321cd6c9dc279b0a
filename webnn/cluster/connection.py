"""The Redis client of a cluster process: one pool of at most `REDIS_CONNECTIONS` connections
that a command waits on when all are busy (`BlockingConnectionPool`, up to
`POOL_WAIT_SECONDS`), instead of redis-py's default pool, which refuses a command beyond 100
connections in use (``MaxConnectionsError``: a 500 for the request that hit it). A front-end
under thousands of concurrent requests so queues its Redis commands rather than failing them,
and the run's Redis sees a bounded number of connections per process.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ResponseError

REDIS_CONNECTIONS = 256
"""Connections at most per process (Redis's own default limit is 10 000 clients)."""
POOL_WAIT_SECONDS = 20.0
"""How long a command waits for a free connection before it fails."""
STALL_SECONDS = 10.0
"""`ArrayReader`: a read that receives nothing for this long fails (a stalled Redis or network
must not hang the merger while its lock renewals, another task, keep its lease)."""


def connect(url: str, connections: int = REDIS_CONNECTIONS) -> aioredis.Redis:
    """A client of the Redis at `url` with a blocking pool of `connections`."""
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=connections,
                                                    timeout=POOL_WAIT_SECONDS)
    return aioredis.Redis(connection_pool=pool)


class ArrayReader:
    """Model-sized values read from Redis straight into writable buffers: ``MGET`` on its own
    connection, the reply parsed as RESP bulk strings and each value received
    (``sock_recv_into``) into a `bytearray` of its announced length.

    redis-py's asyncio client builds a 4 MB reply from 64 KB reads and copies it into `bytes`
    (about 10 ms of CPU per 4 MB locally); here it costs the kernel's copy (2-3 ms), and
    ``np.frombuffer`` on the result is a writable float32 view, so a stream entry's array is
    decoded without a copy (`records.decode_entry`). One command at a time (a lock); a failed or
    cancelled read closes the connection (its reply is unusable) and the next command opens a
    new one (``AUTH`` and ``SELECT`` as the client's settings say); a kept connection that
    Redis closed meanwhile (its ``timeout`` setting, a restart) is replaced and the ``MGET``
    (a read) sent once more. A reply that stops arriving (no byte for `stall_timeout` seconds)
    fails with `ConnectionError`, as a closed connection does. TCP and Unix sockets only:
    `from_client` gives None for another connection class (TLS), whose callers use ``MGET``
    of the ordinary client.
    """

    def __init__(self, *, host: str = "localhost", port: int = 6379, path: str | None = None,
                 db: int = 0, username: str | None = None, password: str | None = None,
                 connect_timeout: float = 10.0, stall_timeout: float = STALL_SECONDS) -> None:
        self.address: tuple[str, int] | str = path if path else (host, int(port))
        self.db = int(db)
        self.username = username
        self.password = password
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self._sock: socket.socket | None = None
        self._pending = bytearray()
        self._scratch = memoryview(bytearray(65536))
        """Where a reply's header lines are received before joining `_pending`."""
        self._lock = asyncio.Lock()

    @classmethod
    def from_client(cls, client: aioredis.Redis) -> ArrayReader | None:
        """A reader for the Redis `client` talks to, or None (TLS or another transport)."""
        pool = client.connection_pool
        kwargs = pool.connection_kwargs
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(path=kwargs["path"], db=kwargs.get("db", 0) or 0,
                       username=kwargs.get("username"), password=kwargs.get("password"))
        if pool.connection_class is not Connection:
            return None
        return cls(host=kwargs.get("host", "localhost"), port=kwargs.get("port", 6379),
                   db=kwargs.get("db", 0) or 0, username=kwargs.get("username"),
                   password=kwargs.get("password"))

    async def mget(self, keys: list[str]) -> list[bytearray | None]:
        """The values of `keys` (None where a key is missing), in order."""
        if not keys:
            return []
        async with self._lock:
            for attempt in range(2):
                reused = self._sock is not None
                try:
                    sock = await self._connected()
                    await self._command(sock, "MGET", *keys)
                    return await self._values(sock)
                except (ConnectionError, OSError):
                    self.close()
                    if not reused or attempt:  # a kept connection Redis closed: once more
                        raise
                except BaseException:
                    self.close()
                    raise
            raise AssertionError("unreachable")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._pending.clear()

    async def _connected(self) -> socket.socket:
        if self._sock is not None:
            return self._sock
        loop = asyncio.get_running_loop()
        family = socket.AF_UNIX if isinstance(self.address, str) else socket.AF_INET6
        address: Any  # a socket path, or the (host, port, ...) tuple getaddrinfo gives
        if not isinstance(self.address, str):
            infos = await loop.getaddrinfo(*self.address, type=socket.SOCK_STREAM)
            family, _, _, _, address = infos[0]
        else:
            address = self.address
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self._sock = sock
        async with asyncio.timeout(self.connect_timeout):
            await loop.sock_connect(sock, address)
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.password is not None:
                auth = ([self.username] if self.username else []) + [self.password]
                await self._command(sock, "AUTH", *auth)
                await self._simple(sock)
            if self.db:
                await self._command(sock, "SELECT", str(self.db))
                await self._simple(sock)
        return sock

    @staticmethod
    async def _command(sock: socket.socket, *args: str) -> None:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        await asyncio.get_running_loop().sock_sendall(sock, b"".join(parts))

    async def _received(self, sock: socket.socket, into: memoryview) -> int:
        """Bytes received into `into` (at least one), within `stall_timeout`."""
        try:
            async with asyncio.timeout(self.stall_timeout):
                count = await asyncio.get_running_loop().sock_recv_into(sock, into)
        except TimeoutError:
            raise ConnectionError(f"Redis sent nothing for {self.stall_timeout:g} s") from None
        if not count:
            raise ConnectionError("Redis closed the connection")
        return count

    async def _line(self, sock: socket.socket) -> bytes:
        while (end := self._pending.find(b"\r\n")) < 0:
            count = await self._received(sock, self._scratch)
            self._pending += self._scratch[:count]
        line = bytes(self._pending[:end])
        del self._pending[:end + 2]
        if line.startswith(b"-"):
            raise ResponseError(line[1:].decode(errors="replace"))
        return line

    async def _simple(self, sock: socket.socket) -> None:
        line = await self._line(sock)
        if not line.startswith(b"+"):
            raise ResponseError(f"unexpected reply {line[:40]!r}")

    async def _values(self, sock: socket.socket) -> list[bytearray | None]:
        head = await self._line(sock)
        if not head.startswith(b"*"):
            raise ResponseError(f"MGET: unexpected reply {head[:40]!r}")
        out: list[bytearray | None] = []
        for _ in range(int(head[1:])):
            line = await self._line(sock)
            if not line.startswith(b"$"):
                raise ResponseError(f"MGET: unexpected value header {line[:40]!r}")
            size = int(line[1:])
            if size < 0:
                out.append(None)
                continue
            value = bytearray(size)
            view = memoryview(value)
            got = min(size, len(self._pending))
            view[:got] = self._pending[:got]
            del self._pending[:got]
            while got < size:
                got += await self._received(sock, view[got:])
            if await self._line(sock) != b"":  # the value's CRLF
                raise ResponseError("MGET: a value longer than announced")
            out.append(value)
        return out
