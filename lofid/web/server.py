"""The web page's server: the standard library's ThreadingHTTPServer, one thread per
request, inside the daemon.

Why the standard library: the page needs a handful of routes, one long response per
watching browser (the video, the events) and no templates; ThreadingHTTPServer does
that with nothing to install, and a thread per browser is cheap at the few browsers
one lofid has. The control methods are lofid.control.api's, checked by the same
description as on the control socket.

Routes: / (the page), /overlay (for an OBS Browser Source), the page's own script,
style and icon; /stream (fragmented MP4, lofid.web.stream), /events (server-sent
events: each daemon event, and a `status` snapshot after each), /thumb/KEY.jpg (the
library grid), /api/info, and POST /api/METHOD with the method's params as a JSON
array.

Security:
- Every request but the page's static files needs `Authorization: Bearer TOKEN`: the
  token of control_token_file when one is set (the page asks for it once and keeps it
  in the browser), else a token made for this run, which only the page served on
  127.0.0.1 carries. A header, not a cookie: another site the browser visits cannot
  make the browser send it, and no cross-origin page can read the token (no CORS
  header is ever sent; an OPTIONS preflight gets 405).
- Bound to 127.0.0.1 unless configured; there, a Host header that is not this
  machine's is refused (a DNS-rebinding page would send its own name).
- A strict Content-Security-Policy: scripts, styles and media from the page's own
  origin only, nothing inline.
- Bodies over MAX_BODY, unknown paths and methods, a path with `..`, bad JSON or
  params: 4xx with a one-line reason; an error in a handler is a 500 with one line,
  logged; the daemon never dies of a request.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import re
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import unquote, urlsplit

from lofid.control.protocol import RpcError
from lofid.errors import UserError
from lofid.web.watchers import END, Watchers

log = logging.getLogger("lofid.web")

MAX_BODY = 64 * 1024             # bytes of a control request: params are a few words
MAX_EVENT_CLIENTS = 64
EVENT_QUEUE = 256                # events waiting for one browser before it is dropped
KEEPALIVE_S = 15.0               # an SSE comment this often: a closed tab is noticed
LOOPBACK = ("127.0.0.1", "::1", "localhost")

# The control methods the page may call: all but shutdown (a page is one click from
# ending the stream by mistake; `lofid ctl stop` is there for that).
WEB_METHODS = ("status", "scene.set", "audio.prompt", "next", "pause", "resume",
               "library.list", "loop.play", "generate", "config.reload", "output.add",
               "output.remove", "output.list")

STATIC = {                       # path -> (file in static/, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/overlay": ("overlay.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/overlay.js": ("overlay.js", "text/javascript; charset=utf-8"),
    "/common.js": ("common.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/icon.svg": ("icon.svg", "image/svg+xml"),
}

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
       "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
       "frame-ancestors 'none'")

_THUMB = re.compile(r"^/thumb/([0-9a-f]{16,64})\.jpg$")
_API = re.compile(r"^/api/([a-z.]{1,32})$")


class WebServer:
    """The page's HTTP server. `handlers` are the control methods (Control.handlers()),
    `stream` the WebStream, `thumbs` the Thumbnails; `token` guards every request but
    the static files; `embed` puts it into the page (a loopback-only run without a
    token file)."""

    def __init__(self, address: tuple[str, int], handlers: dict, stream, thumbs, token: str,
                 embed: bool, scenes: tuple[str, ...], now_playing=None):
        self.address = address
        self.handlers = {name: handlers[name] for name in WEB_METHODS if name in handlers}
        self.stream = stream
        self.thumbs = thumbs
        self.token = token
        self.embed = embed
        self.scenes = scenes
        self.now_playing = now_playing or (lambda: None)
        self.loopback = address[0] in LOOPBACK
        self.watchers = Watchers(MAX_EVENT_CLIENTS, EVENT_QUEUE)
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._static = {path: (resources.files("lofid.web").joinpath("static", name)
                               .read_bytes(), kind) for path, (name, kind) in STATIC.items()}

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> None:
        """Listen; UserError naming the address when it cannot."""
        handler = type("Handler", (_Handler,), {"web": self})
        try:
            self._httpd = _Server(self.address, handler)
        except OSError as e:
            host, port = self.address
            raise UserError(f"web {host}:{port}: cannot listen: {e.strerror or e}") from None
        for target, name in ((self._httpd.serve_forever, "web server"),
                             (self._pump, "web status")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()
        self.watchers.close()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        for t in self._threads:
            t.join(timeout=5)

    # --- events --------------------------------------------------------------------

    def notify(self, name: str, payload) -> None:
        """A daemon event: to every browser listening, then a fresh status."""
        self._broadcast(name, payload)
        self._changed.set()

    def _broadcast(self, name: str, payload) -> None:
        self.watchers.send(_sse(name, payload))

    def _pump(self) -> None:
        # After events, and when the track that sounds changes (the audio track has no
        # event of its own), every browser gets the status: the page is never polled.
        track = None
        while not self._stopping.is_set():
            changed = self._changed.wait(1.0)
            self._changed.clear()
            if self._stopping.is_set():
                return
            if not self.watching:
                continue
            now = self.now_playing()
            now_path = (now or {}).get("path")
            if changed or now_path != track:
                track = now_path
                try:
                    self._broadcast("status", self.status())
                except Exception as e:          # never let one bad read end the updates
                    log.warning("web: status: %s: %s", type(e).__name__, e)

    def status(self) -> dict:
        return self.handlers["status"]([])

    @property
    def watching(self) -> int:
        return len(self.watchers)

    def info(self) -> dict:
        return {"scenes": list(self.scenes), "stream": self.stream.mime if self.stream else None,
                "methods": list(self.handlers)}

    def page(self, path: str) -> bytes:
        body, _ = self._static[path]
        if path in ("/", "/overlay") and self.embed:
            body = body.replace(b"{{token}}", self.token.encode())
        elif path in ("/", "/overlay"):
            body = body.replace(b"{{token}}", b"")
        return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler):
        import socket
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def handle_error(self, request, client_address) -> None:
        # A browser gone mid-answer, or anything else: one line, never a traceback,
        # and the server goes on.
        import sys
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            log.warning("web: request from %s: %s: %s", client_address[0],
                        type(error).__name__, error)


def _sse(name: str, payload) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload, default=str)}\n\n".encode()


class _Handler(BaseHTTPRequestHandler):
    web: WebServer
    server_version = "lofid"
    sys_version = ""
    # Every answer ends its connection, the long ones (video, events) when they end.
    protocol_version = "HTTP/1.0"
    timeout = 30                         # a client that sends its request this slowly goes
    # A request line the base class cannot read still gets a status line.
    default_request_version = "HTTP/1.0"

    # --- dispatch --------------------------------------------------------------------

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_POST(self) -> None:
        path = self._path()
        if path is None or not self._allowed_host():
            return
        match = _API.match(path)
        if match is None:
            return self._error(404 if path not in STATIC else 405, "no such control")
        if not self._authorized():
            return
        name = match.group(1)
        handler = self.web.handlers.get(name)
        if handler is None:
            return self._error(404, f"unknown method {name!r}")
        params = self._body()
        if params is None:
            return
        try:
            result = handler(params)
        except RpcError as e:
            return self._json(400, {"error": str(e)})
        except Exception as e:
            log.warning("web: %s: %s: %s", name, type(e).__name__, e)
            return self._json(500, {"error": f"{name} failed: {type(e).__name__}"})
        self._json(200, {"result": result})

    def __getattr__(self, name: str):
        # PUT, DELETE, OPTIONS (a CORS preflight), anything else: 405, not the base's 501.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._error(405, f"method {self.command} is not allowed", allow="GET, HEAD, POST")

    def _serve(self, head: bool) -> None:
        path = self._path()
        if path is None or not self._allowed_host():
            return
        if path in STATIC:
            _, kind = self.web._static[path]
            return self._send(200, self.web.page(path), kind, head=head,
                              cache="no-cache")
        if path in ("/stream", "/events", "/api/info") or _THUMB.match(path):
            if not self._authorized():
                return
            if path == "/stream":
                return self._stream(head)
            if path == "/events":
                return self._events(head)
            if path == "/api/info":
                return self._json(200, self.web.info(), head=head)
            return self._thumb(_THUMB.match(path).group(1), head)
        if _API.match(path):
            return self._error(405, "control methods are called with POST", allow="POST")
        self._error(404, "no such page")

    # --- checks ----------------------------------------------------------------------

    def _path(self) -> str | None:
        raw = self.path
        if not raw.startswith("/"):
            self._error(400, "the request target must be a path")
            return None
        path = unquote(urlsplit(raw).path)
        if ".." in path.split("/") or "\\" in path or "\x00" in path or "//" in path:
            self._error(400, "no such path: '..' and the like are refused")
            return None
        return path

    def _allowed_host(self) -> bool:
        if not self.web.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name.strip("[]") in LOOPBACK:
            return True
        self._error(403, "this page answers on 127.0.0.1 only")
        return False

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not token:
            self._error(401, "the token is required (Authorization: Bearer TOKEN)")
            return False
        if not hmac.compare_digest(token.strip().encode(), self.web.token.encode()):
            self._error(403, "wrong token")
            return False
        return True

    def _body(self) -> list | None:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding"):
            self._error(411, "send the body with a Content-Length")
            return None
        try:
            n = int(length or "0")
        except ValueError:
            self._error(400, "Content-Length must be a number")
            return None
        if n < 0:
            self._error(400, "Content-Length must be a number")
            return None
        if n > MAX_BODY:
            self._error(413, f"a request body is at most {MAX_BODY} bytes")
            return None
        try:
            params = json.loads(self.rfile.read(n) or b"[]")
        except (ValueError, UnicodeDecodeError):
            self._error(400, "the body must be the method's params as a JSON array")
            return None
        if not isinstance(params, list):
            self._error(400, "the body must be the method's params as a JSON array")
            return None
        return params

    # --- the long answers --------------------------------------------------------------

    def _stream(self, head: bool) -> None:
        stream = self.web.stream
        if stream is None or stream.mime is None:
            return self._error(503, "the stream has not started yet", retry=True)
        if head:
            return self._start(200, stream.mime, cache="no-store")
        q = stream.join()
        if q is None:
            return self._error(503, "the stream is not playing (removed, or enough browsers "
                                    "watch already)", retry=True)
        try:
            self._start(200, stream.mime, cache="no-store")
            while True:
                data = q.get()
                if data is END:
                    return
                self.wfile.write(data)
        except OSError:
            return                                  # the browser went away
        finally:
            stream.leave(q)

    def _events(self, head: bool) -> None:
        q = self.web.watchers.join()
        if q is None:
            return self._error(503, "too many pages are listening", retry=True)
        try:
            self._start(200, "text/event-stream; charset=utf-8", cache="no-store")
            if head:
                return
            self.wfile.write(_sse("status", self.web.status()))
            self.wfile.flush()
            while True:
                try:
                    data = q.get(timeout=KEEPALIVE_S)
                except queue.Empty:
                    data = b": keep-alive\n\n"
                if data is END:
                    return
                self.wfile.write(data)
                self.wfile.flush()
        except OSError:
            return
        finally:
            self.web.watchers.leave(q)

    def _thumb(self, key: str, head: bool) -> None:
        try:
            data = self.web.thumbs.get(key)
        except KeyError:
            return self._error(404, "no such loop")
        except Exception as e:
            log.warning("web: thumbnail %s: %s: %s", key, type(e).__name__, e)
            return self._error(404, "this loop has no picture")
        self._send(200, data, "image/jpeg", head=head, cache="private, max-age=86400")

    # --- answering ---------------------------------------------------------------------

    def end_headers(self) -> None:
        # On every answer, the errors the base class sends too.
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        super().end_headers()

    def _start(self, code: int, kind: str, cache: str = "no-store", length: int | None = None,
               **extra) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Cache-Control", cache)
        if length is not None:
            self.send_header("Content-Length", str(length))
        for name, value in extra.items():
            self.send_header(name.replace("_", "-").title(), value)
        self.end_headers()

    def _send(self, code: int, body: bytes, kind: str, head: bool = False,
              cache: str = "no-store", **extra) -> None:
        self._start(code, kind, cache, len(body), **extra)
        if not head:
            self.wfile.write(body)

    def _json(self, code: int, doc, head: bool = False) -> None:
        self._send(code, json.dumps(doc, default=str).encode(), "application/json", head=head)

    def _error(self, code: int, message: str, allow: str | None = None,
               retry: bool = False) -> None:
        extra = {}
        if allow:
            extra["allow"] = allow
        if retry:
            extra["retry_after"] = "1"
        self._send(code, json.dumps({"error": message}).encode(), "application/json",
                   head=getattr(self, "command", None) == "HEAD", **extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None):
        # The base class's own refusals (a request line over 64 KiB, too many headers,
        # bad syntax): one line of JSON like every other answer, never its HTML.
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._error(code, message or phrase)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format, *args) -> None:
        log.debug("web: %s %s", self.address_string(), format % args)


def make_token() -> str:
    """A token for a run without a token file: the page on 127.0.0.1 carries it."""
    return secrets.token_urlsafe(24)
