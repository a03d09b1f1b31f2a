"""A local TCP proxy that makes every database round trip cost `rtt_ms` more.

Between the client (asyncpg, for the project's pool and the baseline's engine alike) and
PostgreSQL (over TCP or a unix socket), each chunk read from one side is written to the other
`rtt_ms / 2` later, in each direction, so that a query and its answer cross the proxy in
`rtt_ms` more than they would straight: what a database in another zone costs. Chunks queue
with their due time, so a delay never holds up the chunks behind it.

The proxy also counts round trips at the wire: each time the client speaks after the server
did (a turn of the conversation) is one. The benchmark runs it in a process of its own
(`ProxyProcess`), so that its timers do not wait on the benchmark's Python.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import selectors
from dataclasses import dataclass
from typing import Any

CHUNK = 256 * 1024


@dataclass
class Counter:
    """What the proxy counts; `multiprocessing.Value`s stand in for it across processes."""

    value: int = 0


class DelayProxy:
    """Listens on 127.0.0.1 and relays each connection to the upstream server, delaying each
    direction by half of `rtt_ms`."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        rtt_ms: float,  # float-ok: a delay, not money
        *,
        turns: Any = None,
        connections: Any = None,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = rtt_ms / 2000  # seconds, each way
        self.oversleep = 0.0  # how late a timer wakes, on average (seconds)
        self.turns = turns if turns is not None else Counter()
        self.connections = connections if connections is not None else Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = self.upstream
        if host.startswith("/"):  # a unix-socket directory, as PostgreSQL names it
            return await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        return await asyncio.open_connection(host, port)

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.connections.value += 1
        server_w = None
        try:
            server_r, server_w = await self._open_upstream()
            # Who spoke last on this connection: the client's first words are a turn.
            last = {"client": False}
            pipes = [
                asyncio.create_task(self._pipe(client_r, server_w, last, from_client=True)),
                asyncio.create_task(self._pipe(server_r, client_w, last, from_client=False)),
            ]
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
                # One side closed: let what the other still has in flight arrive, then stop.
                await asyncio.wait(pipes, timeout=self.delay + 1)
            finally:
                for p in pipes:
                    p.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        except OSError:
            pass
        finally:
            for w in (client_w, server_w):
                if w is not None:
                    w.close()
            self._tasks.discard(task)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        last: dict[str, bool],
        *,
        from_client: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()  # float-ok: due time

        async def forward() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    # Wake as much earlier as waking up has been late (it averages a few
                    # tenths of a millisecond), so that chunks leave on time on average.
                    early = self.oversleep
                    await asyncio.sleep(max(0.0, wait - early))
                    late = loop.time() - due
                    self.oversleep = min(self.delay, max(0.0, 0.9 * early + 0.1 * (late + early)))
                writer.write(data)
                await writer.drain()
            with contextlib.suppress(OSError):
                writer.write_eof()

        forwarding = asyncio.create_task(forward())
        try:
            while True:
                data = await reader.read(CHUNK)
                if from_client and data and not last["client"]:
                    self.turns.value += 1
                if data:
                    last["client"] = from_client
                queue.put_nowait((loop.time() + self.delay, data))
                if not data:
                    break
            await forwarding
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            forwarding.cancel()


def _serve_forever(
    host: str,
    port: int,
    rtt_ms: float,  # float-ok: a delay
    turns: Any,
    connections: Any,
    reply: Any,
) -> None:
    async def main() -> None:
        proxy = DelayProxy(host, port, rtt_ms, turns=turns, connections=connections)
        reply.send(await proxy.start())
        await asyncio.Event().wait()

    # select() takes its timeout in microseconds, where epoll and poll round it up to the
    # next millisecond: a 2.5 ms delay would be 3 ms and more. The proxy's few hundred
    # sockets at most are well within select()'s limit.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


class ProxyProcess:
    """A DelayProxy in a process of its own; `turns` counts round trips at the wire."""

    def __init__(self, upstream_host: str, upstream_port: int, rtt_ms: float) -> None:  # float-ok
        ctx = multiprocessing.get_context("spawn")
        self.turns = ctx.Value("q", 0, lock=False)
        self.connections = ctx.Value("q", 0, lock=False)
        self._reply, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_serve_forever,
            args=(upstream_host, upstream_port, rtt_ms, self.turns, self.connections, child),
            daemon=True,
            name=f"bench-proxy-{rtt_ms}ms",
        )
        self.rtt_ms = rtt_ms
        self.port: int | None = None

    def start(self) -> int:
        self._process.start()
        if not self._reply.poll(30):
            self._process.terminate()
            raise RuntimeError("the delaying proxy did not start")
        self.port = self._reply.recv()
        return self.port

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(5)
