"""The dashboard's web server: ``ionscreen dashboard --store ...``.

Standard library only (``http.server.ThreadingHTTPServer``); what it shows comes from
:class:`~ionscreen.workflows.dashboard.Dashboard`. Routes:

* ``/``: the page (``data/dashboard.html``: HTML, inline CSS and a few lines of JS that fetch
  ``/api/status`` every 2 s; nothing is loaded from elsewhere, so it works offline and over an
  SSH tunnel);
* ``/api/status``: :meth:`Dashboard.status` as JSON;
* ``/plot/<ion>.png``: :meth:`Dashboard.plot_png`, barrier vs capacity of that ion's ranked
  hosts;
* ``/exports/<file>``: the exports in the run folder (``ranked_<ion>.csv/.json``,
  ``report.html``, ``top_cifs.zip``, ``failures.csv``), nothing else.

Bound to 127.0.0.1 by default; to listen on another address it requires a user name and a
password (HTTP basic auth). Basic auth sends the password base64-encoded, not encrypted: on a
shared network prefer the default loopback binding and an SSH tunnel
(``ssh -L 8050:127.0.0.1:8050 login-node``).
"""

from __future__ import annotations

import base64
import hmac
import json
import re
import socket
import threading
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

from .dashboard import Dashboard, DashboardError

EXPORT_TYPES = {".csv": "text/csv; charset=utf-8", ".json": "application/json",
                ".html": "text/html; charset=utf-8", ".zip": "application/zip"}
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "ionscreen-dashboard/1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
              ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _text(self, code: int, msg: str) -> None:
        self._send(code, (msg + "\n").encode(), "text/plain; charset=utf-8")

    def _authorised(self) -> bool:
        cred = self.server.credentials
        if cred is None:
            return True
        head = self.headers.get("Authorization", "")
        if head.startswith("Basic "):
            try:
                user, _, pw = base64.b64decode(head[6:].strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user, pw = "", ""
            ok_u = hmac.compare_digest(user.encode(), cred[0].encode())
            ok_p = hmac.compare_digest(pw.encode(), cred[1].encode())
            if ok_u and ok_p:
                return True
        self._send(401, b"authentication required\n", "text/plain; charset=utf-8",
                   {"WWW-Authenticate": 'Basic realm="ionscreen dashboard", charset="UTF-8"'})
        return False

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._authorised():
            return
        path = urlsplit(self.path).path
        dash = self.server.dashboard
        try:
            if path in ("/", "/index.html"):
                self._send(200, _page(dash).encode(), "text/html; charset=utf-8")
            elif path == "/api/status":
                body = json.dumps(dash.status(), allow_nan=False).encode()
                self._send(200, body, "application/json")
            elif path.startswith("/plot/") and path.endswith(".png"):
                ion = unquote(path[len("/plot/"):-len(".png")])
                png = dash.plot_png(ion) if re.fullmatch(r"[A-Za-z0-9]{1,8}", ion) else None
                if png is None:
                    self._text(404, f"no ranked hosts for ion {ion!r} yet")
                else:
                    self._send(200, png, "image/png")
            elif path.startswith("/exports/"):
                name = unquote(path[len("/exports/"):])
                p = dash.export_file(name)
                if p is None:
                    self._text(404, "not an export of this run (ranked_<ion>.csv/.json, "
                                    "report.html, top_cifs.zip, failures.csv)")
                else:
                    ctype = EXPORT_TYPES.get(p.suffix, "application/octet-stream")
                    extra = {"Content-Disposition": f'attachment; filename="{p.name}"'} \
                        if p.suffix == ".zip" else None
                    self._send(200, p.read_bytes(), ctype, extra)
            elif path == "/favicon.ico":
                self._send(204, b"", "image/x-icon")
            elif path == "/healthz":
                self._text(200, "ok")
            else:
                self._text(404, "not found")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - one bad request must not stop the server
            try:
                self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")
            except OSError:
                pass


class DashboardServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, dashboard: Dashboard, host: str = "127.0.0.1", port: int = 8050,
                 user: str | None = None, password: str | None = None,
                 verbose: bool = False) -> None:
        if bool(user) != bool(password):
            raise DashboardError("give both --user and --password (or neither)")
        if not is_loopback(host) and not (user and password):
            raise DashboardError(
                f"refusing to serve the dashboard on {host} without a password: anyone who can "
                f"reach that address would see the run. Give --user and --password (basic "
                f"auth), or keep the default --host 127.0.0.1 and use an SSH tunnel "
                f"(ssh -L 8050:127.0.0.1:8050 <login node>)")
        self.dashboard = dashboard
        self.credentials = (user, password) if user and password else None
        self.verbose = verbose
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def serve(store: Any, host: str = "127.0.0.1", port: int = 8050, *, user: str | None = None,
          password: str | None = None, top: int = 5, webgui_url: str | None = None,
          exports_dir: str | None = None, weights: Any = None) -> DashboardServer:
    """A started-up (not yet serving) dashboard server; call ``serve_forever()`` on it."""
    dash = Dashboard(store, top=top, webgui_url=webgui_url, exports_dir=exports_dir,
                     weights=weights)
    try:
        return DashboardServer(dash, host, port, user=user, password=password)
    except OSError as exc:
        raise DashboardError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(use another --port, or --port 0 for a free one)") from exc


def serve_in_thread(store: Any, **kwargs: Any) -> tuple[DashboardServer, threading.Thread]:
    """Start a dashboard in a daemon thread (for tests and notebooks); ``server.shutdown()``
    stops it."""
    server = serve(store, **kwargs)
    t = threading.Thread(target=server.serve_forever, name="ionscreen-dashboard", daemon=True)
    t.start()
    return server, t


# --------------------------------------------------------------------------- page


@lru_cache(maxsize=1)
def _page_template() -> str:
    """The page (``data/dashboard.html``): HTML, CSS and JS inline, ``__STORE__`` to fill in."""
    return resources.files("ionscreen.workflows").joinpath("data/dashboard.html").read_text(
        encoding="utf-8")


def _page(dash: Dashboard) -> str:
    return _page_template().replace("__STORE__", _html_escape(dash.description))


def _html_escape(s: str) -> str:
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))
