"""README.md runs as written: its shell and Python snippets, in order, and its config.

The snippets run as one bash script in a private network namespace (so the
default ports they use are free and nothing leaves the machine), with a
fresh HOME, from the repository's root, exactly as a reader pastes them.
The first block, the two set-up commands, is the demo (run here too) and
the test command (which is this suite).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.procs import REPO
from wsh.config import load_file

pytestmark = pytest.mark.e2e

README = REPO / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SETUP_BLOCK = ["scripts/demo", "scripts/test"]
# Every background job the snippets start (servers) ends with the script.
PRELUDE = """set -euo pipefail
ip link set lo up
trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT
"""


def blocks() -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1).strip(), m.group(2)) for m in FENCE.finditer(README.read_text())]


def script() -> str:
    parts = [PRELUDE]
    for lang, body in blocks()[1:]:
        if lang == "sh":
            parts.append(body)
        elif lang == "python":
            parts.append(f"python - <<'WSH_README_PY'\n{body}WSH_README_PY\n")
    return "\n".join(parts)


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WSH_", "XDG_"))}
    env.update(HOME=str(home), PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def untracked_files() -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return set(listed.stdout.splitlines())


def test_readme_opens_with_the_two_setup_commands() -> None:
    lang, body = blocks()[0]
    assert lang == "sh"
    assert [line.split("#")[0].strip() for line in body.splitlines()] == SETUP_BLOCK


def test_readme_blocks_are_all_runnable_kinds() -> None:
    assert {lang for lang, _ in blocks()} <= {"sh", "python", "toml"}


def test_readme_config_loads_without_warnings(tmp_path: Path) -> None:
    configs = [body for lang, body in blocks() if lang == "toml"]
    assert configs
    for i, body in enumerate(configs):
        path = tmp_path / f"config-{i}.toml"
        path.write_text(body)
        path.chmod(0o600)
        assert not load_file(path).warnings


def test_readme_snippets_run_as_written(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a private network namespace")
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "readme.sh").write_text(script())
    untracked = untracked_files()
    done = subprocess.run(
        ["unshare", "--net", "bash", str(tmp_path / "readme.sh")],
        cwd=REPO,
        env=clean_env(home),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    assert "Traceback" not in done.stderr, output
    # A reader's checkout stays clean: tokens and configs go under HOME.
    assert untracked_files() == untracked


def test_demo_runs(tmp_path: Path) -> None:
    """The main job: a hub, two backends and the seed's fan-out through them."""
    done = subprocess.run(
        ["scripts/demo"],
        cwd=REPO,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for line in (
        "fan-out",
        "settled build-web on build-2 (ready: bash)",
        # READY: the job silent in `sleep` is reported once it printed.
        "settled build-api on build-1 (ready: bash): ['api ok'",
        "DEPLOYED",
        "all sessions killed",
    ):
        assert line in done.stdout, done.stdout
