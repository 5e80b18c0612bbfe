"""The teacher page's HTTP and WebSocket server (aiohttp), in a thread of its own; no ROS in it.

Security, because a robot's teacher page may sit on a lab network:
* bound to 127.0.0.1 by default; there the Host header must be a loopback IP literal (127.0.0.0/8,
  [::1]) or exactly `localhost`, with the page's own port (no DNS rebinding: `127.evil.example` is refused);
* with a token (required when bound elsewhere) every request and WebSocket must carry it: `?token=`
  once (it becomes a same-site, HttpOnly cookie), the cookie, or `Authorization: Bearer`;
* a WebSocket from another origin (a web site open in the same browser) is refused;
* three pages and nothing else are served from memory: no URL reaches the file system;
* messages from a page are size-limited, rate-limited and checked with the guard's label rules.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Protocol
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from ..core import jsonio
from ..core.errors import InputError
from .hub import PROTOCOL, Ack, Answer, RateLimit, SetLearning, TeacherHub, parse_command

log = logging.getLogger(__name__)
COOKIE = "icub_guard_token"
#: the page's files, served from memory: path → (package file, content type)
PAGES = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript"),
         "/style.css": ("style.css", "text/css")}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                               "img-src 'self' data: blob:; base-uri 'none'; form-action 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str = ""  # empty on a loopback address: no token; elsewhere one is generated
    max_message_bytes: int = 4096
    rate: float = 5.0  # commands (labels, learning, save) a second per page
    burst: int = 10
    max_messages_per_s: float = 50.0  # all messages, acks included; beyond it the page is disconnected
    default_teacher: str = "web"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise InputError(f"port must be in [0, 65535], got {self.port}")
        if not 64 <= self.max_message_bytes <= 1 << 20:
            raise InputError(f"max_message_bytes must be in [64, 1 MiB], got {self.max_message_bytes}")
        if self.token and (len(self.token) < 8 or not self.token.isascii() or not self.token.isprintable()):
            raise InputError("token must be at least 8 printable ASCII characters")
        RateLimit(self.rate, self.burst)  # raises on a bad rate
        RateLimit(self.max_messages_per_s, 1)

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def with_token(self) -> ServerConfig:
        """This config, with a generated token where one is needed (not on the loopback) and none is set."""
        if self.token or self.loopback:
            return self
        return ServerConfig(**{**self.__dict__, "token": secrets.token_urlsafe(18)})

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if host in ("0.0.0.0", "[::]"):
            host = "<this machine's address>"
        return f"http://{host}:{port or self.port}/" + (f"?token={self.token}" if self.token else "")


class Robot(Protocol):
    """What the page may ask of the robot (the ROS node implements it)."""

    def teach(self, body: dict) -> Awaitable[tuple[bool, str]]: ...

    def set_learning(self, on: bool) -> Awaitable[tuple[bool, str]]: ...

    def save(self) -> Awaitable[tuple[bool, str]]: ...

    def forget(self, decision_id: int) -> Awaitable[tuple[bool, str]]: ...


def _page_files() -> dict[str, tuple[bytes, str]]:
    root = resources.files(__package__) / "static"
    return {path: (root.joinpath(name).read_bytes(), ctype) for path, (name, ctype) in PAGES.items()}


class TeacherPage:
    """The aiohttp application: the page, its WebSocket, and the checks in front of both."""

    def __init__(self, hub: TeacherHub, robot: Robot, cfg: ServerConfig):
        self.hub, self.robot, self.cfg = hub, robot, cfg
        self.stats: Counter[str] = Counter()
        self.files = _page_files()
        self.port = cfg.port
        self.app = web.Application(middlewares=[self._checks], client_max_size=cfg.max_message_bytes)
        self.app.router.add_get("/ws", self._ws)
        for path in PAGES:
            self.app.router.add_get(path, self._file)

    # ----------------------------------------------------------- checks
    def _host_ok(self, request: web.Request) -> bool:
        if not self.cfg.loopback:
            return True  # the token protects it
        return loopback_host(request.host, self.port)

    def _token_ok(self, request: web.Request) -> tuple[bool, bool]:
        """(allowed, came in the query: set the cookie)."""
        if not self.cfg.token:
            return True, False
        auth = request.headers.get("Authorization", "")
        for given, from_query in ((request.query.get("token"), True), (request.cookies.get(COOKIE), False),
                                  (auth[7:] if auth.startswith("Bearer ") else None, False)):
            if given is not None:
                return hmac.compare_digest(given.encode(), self.cfg.token.encode()), from_query
        return False, False

    @web.middleware
    async def _checks(self, request: web.Request, handler):
        if not self._host_ok(request):
            self.stats["refused_host"] += 1
            return self._refuse(403, "forbidden: this page answers only on the loopback address")
        ok, from_query = self._token_ok(request)
        if not ok:
            self.stats["refused_token"] += 1
            return self._refuse(403, "forbidden: missing or wrong access token (see the node's log for the URL)")
        resp = await handler(request)
        if from_query and not resp.prepared:
            resp.set_cookie(COOKIE, self.cfg.token, httponly=True, samesite="Strict", path="/")
        return resp

    @staticmethod
    def _refuse(status: int, text: str) -> web.Response:
        return web.Response(status=status, text=text + "\n", headers=HEADERS)

    # ---------------------------------------------------------- handlers
    async def _file(self, request: web.Request) -> web.Response:
        body, ctype = self.files[request.path]
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers=HEADERS)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            self.stats["refused_origin"] += 1
            return self._refuse(403, "forbidden: WebSocket from another origin")
        ws = web.WebSocketResponse(max_msg_size=self.cfg.max_message_bytes, heartbeat=10.0)
        await ws.prepare(request)
        wake = asyncio.Event()
        client = self.hub.connect(wake.set)
        self.stats["connections"] += 1
        commands, everything = RateLimit(self.cfg.rate, self.cfg.burst), RateLimit(
            self.cfg.max_messages_per_s, int(2 * self.cfg.max_messages_per_s))
        await ws.send_str(jsonio.dumps({"type": "hello", "protocol": PROTOCOL, "teacher": self.cfg.default_teacher,
                                        "max_message_bytes": self.cfg.max_message_bytes}))
        await ws.send_str(jsonio.dumps(self.hub.snapshot()))
        sender = asyncio.create_task(self._send_loop(ws, client, wake))
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                if not everything.allow():
                    self.stats["flooded"] += 1
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many messages")
                    break
                await self._command(ws, client, msg.data, commands)
        finally:
            self.hub.disconnect(client)
            sender.cancel()
        if ws.close_code == WSCloseCode.MESSAGE_TOO_BIG:
            self.stats["too_big"] += 1
        return ws

    async def _command(self, ws, client, data, limit: RateLimit) -> None:
        try:
            cmd = parse_command(data, self.cfg.max_message_bytes)
        except InputError as exc:
            self.stats["bad_messages"] += 1
            self.hub.tell(client, {"type": "error", "message": str(exc)})
            return
        if isinstance(cmd, Ack):
            client.acked = True
            client.wake()
            return
        if not limit.allow():
            self.stats["rate_limited"] += 1
            self.hub.tell(client, {"type": "error", "message": "too fast: at most "
                                   f"{self.cfg.rate:g} actions a second; wait a moment"})
            return
        if isinstance(cmd, Answer):
            await self._answer(client, cmd)
            return
        ok, text = await (self.robot.set_learning(cmd.on) if isinstance(cmd, SetLearning) else self.robot.save())
        self.hub.tell(client, {"type": "result", "ok": ok, "message": text})

    async def _answer(self, client, cmd: Answer) -> None:
        if cmd.decision_id is not None and not self.hub.correctable(cmd.decision_id):
            self.hub.tell(client, {"type": "error", "message": f"decision {cmd.decision_id} is too old to correct: "
                                   f"the guard keeps its last {self.hub.limits.decisions_kept} decisions"})
            return
        note = ""
        if cmd.forget:  # a label taught from that decision was wrong: take it back first
            ok, text = await self.robot.forget(cmd.decision_id)
            if not ok:
                self.hub.tell(client, {"type": "error", "message": f"not corrected: {text}"})
                return
            note = f" ({text})"
        body = cmd.feedback()
        ok, text = await self.robot.teach(body)  # the guard's answer: learned, held (asked back) or refused
        self.stats["labels_sent"] += 1  # its question closes when the guard announces it (`teacher/labels`)
        what = f"question {cmd.query_id}" if cmd.query_id is not None else f"decision {cmd.decision_id}"
        self.hub.tell(client, {"type": "result", "ok": ok, "message": f"{cmd.label!r} for {what}: {text}{note}"})

    async def _send_loop(self, ws: web.WebSocketResponse, client, wake: asyncio.Event) -> None:
        try:
            while not ws.closed:
                await wake.wait()
                wake.clear()
                messages, frame = self.hub.next_messages(client)
                for m in messages:
                    await ws.send_str(jsonio.dumps(m))
                if frame is not None:
                    await ws.send_bytes(frame)
        except (ConnectionError, RuntimeError):  # the page went away mid-send
            pass


def loopback_host(host: str, port: int) -> bool:
    """Whether a Host header names this machine's loopback page: an IP literal in 127.0.0.0/8, `[::1]` or
    exactly `localhost`, with `port` (a name a DNS server answers, such as `127.0.0.1.evil.example`, is not)."""
    try:
        parts = urlsplit(f"//{host}")
        name, given = parts.hostname, parts.port if parts.port is not None else 80
    except ValueError:  # a port that is not a number, a broken bracket
        return False
    if not name or given != port or parts.username is not None or parts.password is not None:
        return False
    if name == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    bracketed = host.startswith("[")
    return (addr.version == 6 and bracketed and addr == ipaddress.IPv6Address("::1")) or \
        (addr.version == 4 and not bracketed and addr in ipaddress.IPv4Network("127.0.0.0/8"))


class RequestLog:
    """aiohttp's server logger for the page: a malformed request is counted (`bad_requests`) and logged in one
    line at most once a second, never as a traceback per request; a handler's own error keeps its traceback
    (also at most once a second)."""

    def __init__(self, stats: Counter, period: float = 1.0, clock: Callable[[], float] | None = None):
        import time

        self.stats, self.period, self.clock = stats, period, clock or time.monotonic
        self._last = -float("inf")

    def _throttled(self) -> bool:
        now = self.clock()
        if now - self._last < self.period:
            return True
        self._last = now
        return False

    def exception(self, msg: str, *args, exc_info=None, **kw) -> None:
        bad = msg.startswith("Error handling request")
        self.stats["bad_requests" if bad else "server_errors"] += 1
        if self._throttled():
            return
        if bad:
            log.warning("teacher page: malformed request refused (%s); %d so far", exc_info or "?",
                        self.stats["bad_requests"])
        else:
            log.error("teacher page: " + msg, *args, exc_info=exc_info)

    def debug(self, msg: str, *args, exc_info=None, **kw) -> None:
        if exc_info is not None and msg.startswith("Error handling request"):
            self.exception(msg, *args, exc_info=exc_info)

    def warning(self, msg: str, *args, **kw) -> None:
        if not self._throttled():
            log.warning("teacher page: " + msg, *args)

    error = warning
    info = warning


class ServerThread:
    """Runs a `TeacherPage` in an event loop on its own thread; `start()` returns once the port is bound."""

    def __init__(self, page: TeacherPage):
        self.page = page
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="teacher-page", daemon=True)
        self.runner: web.AppRunner | None = None

    def start(self, timeout: float = 10.0) -> int:
        """Bind and serve; the port bound (an `OSError` if it cannot be, e.g. in use)."""
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout)

    async def _start(self) -> int:
        self.runner = web.AppRunner(self.page.app, access_log=None, shutdown_timeout=1.0,
                                    logger=RequestLog(self.page.stats))
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.page.cfg.host, self.page.cfg.port)
        await site.start()
        self.page.port = self.runner.addresses[0][1]
        return self.page.port

    def call(self, fn: Callable, *args) -> None:
        """Run `fn(*args)` in the server's loop (from a ROS callback's thread)."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        if not self.thread.is_alive():
            return
        if self.runner is not None:
            try:
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout)
            except Exception as exc:  # shutting down: say it, go on
                log.warning("teacher page did not stop cleanly: %s", exc)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
