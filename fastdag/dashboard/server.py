"""The dashboard's web server: an aiohttp app on its own thread and event loop.

Data flow::

    browser --GET /, /static/*-----------> files in fastdag/dashboard/static
            --GET /api/runs--------------> RunStore.list()
            --GET /api/runs/<id>---------> RunStore.detail(id, rows_from, events_from, packed)
                 ?aggregate=1 -----------> RunStore.aggregated(id): big runs, summarised
            <-GET /api/live (SSE)--------- every TICK s: {"runs": {id: version}} when changed
    executor of another process
    (dashboard="publish:URL")
            --POST /api/publish----------> RunStore.receive(event) for each (wire.py)

The server thread never touches the scheduler: the executor only appends
events to the store's deque (see ``model.py``), the server folds them in
when asked. Bound to a loopback address it serves anyone on this host, as
Jupyter and Dask's dashboard do; bound to any other address every request
needs the token printed in the URL (``?token=...``, then a cookie).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import secrets
import select
import socket
import threading
import time
from typing import Any

from .model import RunStore

STATIC = os.path.join(os.path.dirname(__file__), "static")
TICK = 0.25  # seconds between checks of the live channel
TRIM_EVERY = 1.0  # seconds between trims of the events no page asked for
MEMORY_EVERY = 0.25  # seconds between samples of the workers' memory during a run
COOKIE = "fastdag_dashboard_token"
MAX_POST = 1 << 30  # bytes: the RunSubmitted of a run of millions of tasks is that big


class DashboardServer:
    """Serves ``store`` at http://host:port until ``stop()``."""

    def __init__(self, store: RunStore, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None):
        self.store = store
        self.host = host
        self.token = token if token is not None else \
            (None if _is_loopback(host) else secrets.token_urlsafe(18))
        self._socket = _listen(host, port)
        self.port = self._socket.getsockname()[1]
        self._web: Any = None  # aiohttp.web, imported when the first visitor knocks
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: Any = None
        self._stopping: asyncio.Event | None = None
        self._serving = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        # Its own thread and loop: the caller's thread may already run an
        # event loop (Jupyter, Playwright's sync API).
        self._thread = threading.Thread(target=self._serve, name="fastdag-dashboard",
                                        daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        """Wait for a first visitor, then serve with aiohttp until ``stop()``."""
        if not self._wait_for_a_visitor():
            return
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._start()
        except Exception as exc:  # noqa: BLE001 - the executor goes on without its page
            import warnings
            warnings.warn(f"fastdag: the dashboard could not start: {exc!r}", RuntimeWarning)
            self._loop.close()
            return
        self._serving.set()
        self._loop.run_forever()
        self._loop.close()

    def _wait_for_a_visitor(self) -> bool:
        """Until a connection is pending (True) or ``stop()`` (False): no aiohttp yet.

        aiohttp adds 17,000 long-lived objects that every full garbage
        collection of the process walks: a tenth of the client's CPU on the
        tree of 4,096 leaves. So it is imported only once someone connects
        (the connection waits in the socket's backlog meanwhile); until then
        this thread samples memory and trims the queue itself.
        """
        next_trim = time.monotonic() + TRIM_EVERY
        while True:
            readable = select.select([self._socket, self._wake_r], [], [], MEMORY_EVERY)[0]
            if self._wake_r in readable:
                return False
            if self._socket in readable:
                return True
            self.store.sample_memory()
            if time.monotonic() >= next_trim:
                self.store.trim()
                next_trim = time.monotonic() + TRIM_EVERY

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        base = f"http://{host}:{self.port}/"
        return f"{base}?token={self.token}" if self.token else base

    def _start(self) -> None:
        from aiohttp import web  # checked by fastdag.dashboard.require_aiohttp
        self._web = web
        app = web.Application(middlewares=[self._check_token], client_max_size=MAX_POST)
        app.router.add_get("/", self._index)
        app.router.add_get("/api/runs", self._runs)
        app.router.add_get("/api/runs/{run_id}", self._run)
        app.router.add_get("/api/live", self._live)
        app.router.add_post("/api/publish", self._publish)
        app.router.add_static("/static/", STATIC)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, self._socket).start())
        self._stopping = asyncio.Event()
        # Bound the events waiting for a page, when no page asks for them.
        self._loop.create_task(self._every(TRIM_EVERY, self.store.trim))
        self._loop.create_task(self._every(MEMORY_EVERY, self.store.sample_memory))

    async def _every(self, seconds: float, step: Any) -> None:
        """Call ``step()`` every ``seconds`` until the server stops."""
        while not self._stopping.is_set():
            step()
            try:
                await asyncio.wait_for(self._stopping.wait(), seconds)
            except asyncio.TimeoutError:
                pass

    def stop(self) -> None:
        """Close every connection, the socket and the thread; idempotent."""
        if self._thread.is_alive():
            self._wake_w.send(b"x")  # ends the wait for a first visitor
            while self._thread.is_alive() and not self._serving.wait(0.05):
                pass  # a visitor came just now: aiohttp is starting
            if self._thread.is_alive():
                future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
                future.result(timeout=10)
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        for each in (self._socket, self._wake_r, self._wake_w):
            each.close()

    async def _shutdown(self) -> None:
        self._stopping.set()
        await self._runner.cleanup()

    # -- handlers ---------------------------------------------------------
    @property
    def _check_token(self) -> Any:
        web = self._web

        @web.middleware
        async def check(request: Any, handler: Any) -> Any:
            if self.token is None:
                return await handler(request)
            given = request.query.get("token") or request.cookies.get(COOKIE, "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                raise web.HTTPForbidden(text="fastdag dashboard: open the URL with its "
                                        "?token=... as printed when it started\n")
            response = await handler(request)
            if request.query.get("token"):
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict")
            return response
        return check

    async def _index(self, request: Any) -> Any:
        return self._web.FileResponse(os.path.join(STATIC, "index.html"),
                                      headers={"Cache-Control": "no-cache"})

    async def _runs(self, request: Any) -> Any:
        return self._web.json_response({"runs": self.store.list()})

    async def _run(self, request: Any) -> Any:
        try:
            rows_from = int(request.query.get("rows_from", 0))
            events_from = int(request.query.get("events_from", 0))
        except ValueError:
            raise self._web.HTTPBadRequest(text="rows_from and events_from are integers\n")
        if request.query.get("aggregate") == "1":
            detail = self.store.aggregated(request.match_info["run_id"])
        else:
            detail = self.store.detail(request.match_info["run_id"], max(0, rows_from),
                                       max(0, events_from), request.query.get("packed") == "1")
        if detail is None:
            raise self._web.HTTPNotFound(text=f"no run {request.match_info['run_id']!r}\n")
        return self._web.json_response(detail, dumps=_dumps)

    async def _publish(self, request: Any) -> Any:
        """Events of another process's executor, folded like this process's own.

        JSON only (a cross-site form cannot send that without a preflight,
        which this server does not answer), read into fastdag's event types.
        """
        from .wire import WireError, decode
        if request.content_type != "application/json":
            raise self._web.HTTPUnsupportedMediaType(text="POST application/json\n")
        try:
            published = decode(await request.read())
        except WireError as exc:
            raise self._web.HTTPBadRequest(text=f"{exc}\n")
        for event in published.events:
            self.store.receive(event)
        self.store.memory.extend(published.memory)
        return self._web.Response(status=204)

    async def _live(self, request: Any) -> Any:
        """Server-sent events: the run versions, whenever one of them changes."""
        response = self._web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        sent: dict[str, int] | None = None
        try:
            while not self._stopping.is_set():
                versions = self.store.versions()
                if versions != sent:
                    await response.write(f"data: {json.dumps({'runs': versions})}\n\n".encode())
                    sent = versions
                try:
                    await asyncio.wait_for(self._stopping.wait(), TICK)
                except asyncio.TimeoutError:
                    pass
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str)


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (OSError if it cannot be had)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
