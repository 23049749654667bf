"""The web app's sources, its generated code and its shipped build agree, and
its unit tests pass (node --test), with the toolchain web/package-lock.json pins
(scripts/setup runs npm ci)."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.procs import REPO

WEB = REPO / "web"
STATIC = REPO / "wsh" / "web" / "static"
NODE_BIN = WEB / "node_modules" / ".bin"

pytestmark = pytest.mark.skipif(
    not (NODE_BIN / "esbuild").exists() or shutil.which("node") is None,
    reason="web/node_modules missing: scripts/setup runs npm ci",
)


def _run(*argv: str | Path, cwd: Path = WEB, timeout: float = 180) -> str:
    env = {**os.environ, "PATH": f"{NODE_BIN}:{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _same_tree(left: Path, right: Path) -> list[str]:
    """Files that differ or exist on one side only (relative paths)."""
    different: list[str] = []
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    names |= {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    for name in sorted(names):
        a, b = left / name, right / name
        if not (a.exists() and b.exists() and filecmp.cmp(a, b, shallow=False)):
            different.append(str(name))
    return different


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    template = (WEB / "buf.gen.yaml").read_text().replace("out: src/gen", f"out: {out}")
    (tmp_path / "buf.gen.yaml").write_text(template)
    _run("buf", "generate", "--template", tmp_path / "buf.gen.yaml")
    assert _same_tree(out, WEB / "src" / "gen") == [], "run `npm run generate` in web/ and commit"


def test_shipped_build_is_the_build_of_the_sources(tmp_path: Path) -> None:
    _run("node", "build.mjs", "--out", tmp_path)
    assert _same_tree(tmp_path, STATIC) == [], "run `npm run build` in web/ and commit"


def test_typescript_checks() -> None:
    _run("tsc", "--noEmit", "-p", "tsconfig.json")


def test_unit_tests_pass_under_node() -> None:
    out = _run("npm", "test", "--silent")
    assert "# fail 0" in out and "# pass " in out, out
