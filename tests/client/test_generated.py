"""The blocking SDK client is generated from the asyncio one and kept in step with it."""

from __future__ import annotations

import ast
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

from wsh.client import AsyncClient, AsyncIdleStream, Client, IdleStream, _aio_io, _sync_io

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "generate-sync-client"
PACKAGE = ROOT / "wsh" / "client"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_committed_sync_client_is_up_to_date() -> None:
    result = generate("--check")
    assert result.returncode == 0, result.stderr
    assert (PACKAGE / "_sync.py").read_text().startswith("# Generated from _async.py")


def test_check_fails_when_the_async_client_gains_a_method(tmp_path: Path) -> None:
    shutil.copy(PACKAGE / "_async.py", tmp_path / "_async.py")
    assert generate("--check", "--package", str(tmp_path)).returncode == 1  # no _sync.py yet
    assert generate("--package", str(tmp_path)).returncode == 0
    assert generate("--check", "--package", str(tmp_path)).returncode == 0
    # AsyncClient is the last class of _async.py, so this lands in it.
    source = tmp_path / "_async.py"
    source.write_text(
        source.read_text()
        + "\n    async def ping(self) -> None:\n"
        + '        """Added without regenerating."""\n'
        + "        await self.close()\n"
    )

    stale = generate("--check", "--package", str(tmp_path))
    assert stale.returncode == 1
    assert "is stale" in stale.stderr
    assert "+    def ping(self) -> None:" in stale.stderr

    assert generate("--package", str(tmp_path)).returncode == 0
    assert generate("--check", "--package", str(tmp_path)).returncode == 0
    regenerated = (tmp_path / "_sync.py").read_text()
    assert "    def ping(self) -> None:\n" in regenerated
    assert "        self.close()\n" in regenerated
    assert "async def" not in regenerated
    assert "await self" not in regenerated


def test_both_clients_expose_the_same_methods() -> None:
    assert public(Client) == public(AsyncClient)
    assert public(IdleStream) == public(AsyncIdleStream)
    for name in public(Client):
        sync_attr, async_attr = getattr(Client, name), getattr(AsyncClient, name)
        if callable(sync_attr):
            assert inspect.signature(sync_attr) == inspect.signature(async_attr).replace(
                return_annotation=inspect.signature(sync_attr).return_annotation
            ), name
            assert not inspect.iscoroutinefunction(sync_attr), name
    # The blocking twins of the asyncio protocols.
    for sync_name, async_name in [
        ("__enter__", "__aenter__"),
        ("__exit__", "__aexit__"),
    ]:
        assert hasattr(Client, sync_name) and hasattr(AsyncClient, async_name)
    assert hasattr(IdleStream, "__next__") and hasattr(AsyncIdleStream, "__anext__")


def test_sync_io_has_every_name_the_async_client_takes_from_aio_io() -> None:
    tree = ast.parse((PACKAGE / "_async.py").read_text())
    names = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "wsh.client._aio_io"
        for alias in node.names
    ]
    assert "open_stub" in names
    for name in names:
        assert hasattr(_aio_io, name), name
        assert hasattr(_sync_io, name), name
