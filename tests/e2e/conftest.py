"""Fixtures shared by the end-to-end tests: real server processes on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import Cluster
from wsh.v1 import hub_pb2_grpc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A hub and two backends (build-1, build-2), one set per test module."""
    with Cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def cluster_hub(cluster: Cluster) -> hub_pb2_grpc.HubServiceStub:
    """The cluster's hub."""
    assert cluster.stub is not None
    return cluster.stub
