"""Fixtures of the ``wsh`` command's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from tests.cli.fake_hub import Hub, Running
from wsh.v1 import hub_pb2_grpc


@pytest.fixture
def hub() -> Iterator[Running]:
    fake = Hub()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    hub_pb2_grpc.add_HubServiceServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Running(fake, f"127.0.0.1:{port}")
    server.stop(0)
