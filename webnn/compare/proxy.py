"""A loopback TCP proxy that adds network latency, for clients on slow links.

Every chunk read from either side is delivered to the other side `delay` seconds after it arrived,
in order (chunks pipeline: a large upload is delayed once, not once per chunk). One HTTP request and
its answer therefore take ``2 * delay`` longer: `LatencyProxy(..., latency=0.2)` adds 200 ms per
request with ``delay = latency / 2`` each way.
"""

from __future__ import annotations

import asyncio
import contextlib


class LatencyProxy:
    """Listens on 127.0.0.1 (a free port) and forwards to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, latency: float) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self.target_host, self.target_port = target_host, target_port
        self.delay = latency / 2
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self.port = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                server_r, server_w = await asyncio.open_connection(self.target_host,
                                                                   self.target_port)
            except OSError:
                client_w.close()
                return
            await asyncio.gather(self._pipe(client_r, server_w), self._pipe(server_r, client_w),
                                 return_exceptions=True)
            for writer in (client_w, server_w):
                writer.close()
        except asyncio.CancelledError:
            # closed by `close()`: end quietly, since asyncio's stream callback would otherwise
            # log the cancelled handler as an error (Python 3.11)
            client_w.close()
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read chunks and release each one `delay` seconds after its arrival."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, chunk = await queue.get()
                if not chunk:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        try:
            while True:
                chunk = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay, chunk))
                if not chunk:
                    break
            await sender
        except (ConnectionError, OSError):
            pass
        finally:
            if not sender.done():
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sender
