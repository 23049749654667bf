"""bench/scale.py at a tiny size (``--quick``), so that it cannot rot.

The figures of a run this small judge nothing (the full run does, with its
results in bench/RESULTS.md); the run must complete: every layout starts,
lists and races as the bench expects, the collecting loops get every
session, and the target table is printed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.procs import REPO

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(300)
def test_scale_bench_runs_at_a_tiny_size() -> None:
    done = subprocess.run(
        [sys.executable, "bench/scale.py", "--quick"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert done.returncode == 0, output
    assert "scale: targets (quick run)" in done.stdout, output
    assert "race_first + exclude 2/2" in done.stdout, output
