"""End-to-end soak, short form: the driver of ``bench/soak.py`` at CI size.

A hub and two backends as processes; 100 create/kill cycles, 40 concurrent
sessions, then 10 clients looping send/await/read for 8 seconds. No call may
fail, no screen may be wrong, and every server must come back to its
baseline descriptors, child processes and tasks. The full run (1,000 cycles,
200 sessions, 50 clients for 60 s) is ``python bench/soak.py``; its results
are in bench/SOAK.md.
"""

from __future__ import annotations

import pytest

from tests.soak_driver import BACKENDS, HUB, SoakConfig, SoakReport, run_soak

pytestmark = pytest.mark.e2e

CI_CONFIG = SoakConfig(cycles=100, sessions=40, clients=10, seconds=8.0)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> SoakReport:
    result = run_soak(CI_CONFIG, tmp_path_factory.mktemp("soak"))
    print(result.summary())  # shown with -s, and on failure
    return result


@pytest.mark.timeout(90)
def test_soak_has_no_failed_calls_or_wrong_screens(report: SoakReport) -> None:
    assert report.failures.total_calls == 0, report.failures.examples
    assert report.failures.wrong_screens == 0, report.failures.examples
    assert report.cycles_done == CI_CONFIG.cycles
    assert report.listed_sessions == CI_CONFIG.sessions
    assert report.round_trips > CI_CONFIG.clients, "every client should loop more than once"
    assert report.exit_codes == {HUB: 0, **{name: 0 for name in BACKENDS}}


def test_soak_leaves_no_leaks(report: SoakReport) -> None:
    assert report.leaks() == [], report.summary()
    baseline = report.checkpoint("baseline").servers
    for point in report.checkpoints:
        if point.label == "loaded":
            continue
        assert point.settled, f"{point.label} did not settle:\n{report.summary()}"
        for name, sample in point.servers.items():
            # No child may outlive its session, whatever the tolerance elsewhere.
            assert sample.child_processes == baseline[name].child_processes, (point.label, name)
            assert sample.sessions == 0, (point.label, name)


def test_soak_load_was_real(report: SoakReport) -> None:
    """The loaded sample shows every session alive at once, each with its PTY."""
    loaded = report.checkpoint("loaded").servers
    baseline = report.checkpoint("baseline").servers
    for name, count in report.sessions_per_server.items():
        assert loaded[name].sessions == count
        assert loaded[name].child_processes == baseline[name].child_processes + count
        assert loaded[name].open_fds >= baseline[name].open_fds + 2 * count
    # The hub routes to both backends over one Link each, in every sample.
    for point in report.checkpoints:
        for name in BACKENDS:
            assert point.servers[name].links == 1, (point.label, name)
    assert set(report.memory_per_session()) == {HUB, *BACKENDS}
