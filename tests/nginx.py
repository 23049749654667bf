"""A real nginx, as a subprocess with its own config, in front of wsh backends."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from tests.procs import free_port, wait_listening

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
# Long-lived gRPC streams (the Link, a RaceIdle) must not be cut by a proxy timeout.
LONG = "1h"


def nginx_version() -> tuple[int, ...]:
    assert NGINX is not None
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", out.stderr + out.stdout)
    if not match:
        raise RuntimeError(f"cannot tell the nginx version from {out.stderr!r}")
    return tuple(int(part) for part in match.groups())


class Nginx:
    """nginx on a free loopback port, speaking h2c, with ``grpc_pass`` routes.

    ``routes`` maps a path prefix (``/node-1``) to a backend ``host:port``;
    the prefix is stripped before the call reaches the backend;
    ``read_timeout`` is nginx's ``grpc_read_timeout`` (a stream that receives
    nothing from the backend for that long is cut).
    """

    def __init__(self, tmp: Path, routes: dict[str, str], read_timeout: str = LONG) -> None:
        self.tmp = tmp
        self.routes = routes
        self.read_timeout = read_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.error_log = tmp / "error.log"
        self.access_log = tmp / "access.log"
        self.pid_file = tmp / "nginx.pid"

    def config(self) -> str:
        # "listen ... http2" became a separate "http2 on" in nginx 1.25.1.
        if nginx_version() >= (1, 25, 1):
            listen = f"listen 127.0.0.1:{self.port};\n        http2 on;"
        else:
            listen = f"listen 127.0.0.1:{self.port} http2;"
        locations = "\n".join(
            f"""
        location {prefix}/ {{
            rewrite ^{prefix}/(.*)$ /$1 break;
            grpc_pass grpc://{target};
            grpc_connect_timeout 5s;
            grpc_read_timeout {self.read_timeout};
            grpc_send_timeout {LONG};
            grpc_socket_keepalive on;
        }}"""
            for prefix, target in self.routes.items()
        )
        # As root the workers would drop to "nobody", which cannot enter
        # pytest's private tmp directories.
        user = "user root root;" if os.geteuid() == 0 else ""
        temp = self.tmp / "temp"
        return f"""
{user}
worker_processes 1;
worker_shutdown_timeout 1s;
events {{ worker_connections 256; }}
http {{
    access_log {self.access_log};
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        {listen}
        client_max_body_size 0;
        client_body_timeout {LONG};
        client_header_timeout {LONG};
        keepalive_timeout {LONG};
        keepalive_requests 1000000;
        send_timeout {LONG};
{locations}
    }}
}}
"""

    def start(self, timeout: float = 15.0) -> Nginx:
        if NGINX is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.port = free_port()
        (self.tmp / "temp").mkdir(parents=True, exist_ok=True)
        conf = self.tmp / "nginx.conf"
        conf.write_text(self.config())
        globals_ = f"daemon off; pid {self.pid_file}; error_log {self.error_log} info;"
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(conf), "-p", str(self.tmp), "-g", globals_],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Its own process group, so that kill() reaches the worker too.
            start_new_session=True,
        )
        try:
            wait_listening(self.proc, self.port, timeout, self._failure)
        except BaseException:
            self.kill()
            raise
        return self

    def _failure(self) -> str:
        assert self.proc is not None
        err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
        return err + self.log()

    def log(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        """Graceful shutdown (SIGQUIT); returns nginx's exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """Make sure nginx is gone: its master (our child) and its worker."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)
        if self.proc.stderr:
            self.proc.stderr.close()

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
