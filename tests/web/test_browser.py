"""The web view in Debian's headless Chromium against a hub with two backends.

Screenshots go to ``$WSH_ARTIFACTS/web`` when that is set, else to
``build/web-screenshots/`` in the repository (ignored by git; pytest's own tmp
directories are pruned by later runs); the path is printed (pytest -s shows
it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

from tests.cluster import Cluster
from tests.procs import REPO, ServerProc, stub
from tests.web.browser import browser_errors, chromium, have_chromium, wait_for
from tests.web.webproc import WebProc
from wsh.v1 import hub_pb2

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not have_chromium(), reason="chromium and chromium-driver (scripts/setup)"),
]

TOKEN = "web-view-token-0123456789"
# No rc files: the user's ~/.bashrc is none of the test's business (a slow one
# held every prompt back here for a minute).
SHELL = "bash --norc --noprofile"


@pytest.fixture(scope="module")
def shots() -> Path:
    base = os.environ.get("WSH_ARTIFACTS")
    path = Path(base) / "web" if base else REPO / "build" / "web-screenshots"
    path.mkdir(parents=True, exist_ok=True)
    print(f"web view screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def web_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with Cluster(tmp_path_factory.mktemp("web-cluster")) as running:
        yield running


@pytest.fixture(scope="module")
def page(
    web_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WebDriver, WebProc]]:
    tmp = tmp_path_factory.mktemp("browser")
    with WebProc(web_cluster.hub.addr, env={"WSH_TOKEN": ""}, log_path=tmp / "web.log") as web:
        driver = chromium(tmp / "profile")
        try:
            driver.get(web.url)
            yield driver, web
        finally:
            driver.quit()


def hub_call(cluster: Cluster) -> object:
    assert cluster.stub is not None
    return cluster.stub


def create(cluster: Cluster, name: str, server: str, command: str, tags: list[str]) -> None:
    assert cluster.stub is not None
    cluster.stub.CreateSession(
        hub_pb2.CreateSessionRequest(
            name=name, server=server, command=command, tags=tags, env={"PS1": "$ "}
        ),
        timeout=15,
    )


def row(driver: WebDriver, key: str) -> WebElement | None:
    found = driver.find_elements(By.CSS_SELECTOR, f'tr[data-session="{key}"]')
    return found[0] if found else None


def row_text(driver: WebDriver, key: str) -> str:
    """A session's row as text ("" while absent), read in one step in the page:
    the page re-renders rows as the cluster changes."""
    return str(
        driver.execute_script(
            'const r = document.querySelector(`tr[data-session="${arguments[0]}"]`);'
            "return r ? r.innerText : '';",
            key,
        )
    )


def click_action(driver: WebDriver, key: str, action: str) -> None:
    """Click a session's action button, finding it again if a re-render
    replaced it in between."""

    def click() -> bool:
        found = row(driver, key)
        if found is None:
            return False
        found.find_element(By.CSS_SELECTOR, f'[data-action="{action}"]').click()
        return True

    wait_for(click, what=f"{action} on {key}")


def terminal_text(driver: WebDriver) -> str:
    return str(driver.execute_script(
        "const r = document.querySelector('#terminal .xterm-rows');"
        "return r ? r.innerText : '';"
    ))  # fmt: skip


def open_cluster(driver: WebDriver) -> None:
    driver.find_element(By.ID, "nav-cluster").click()
    wait_for(lambda: driver.find_elements(By.ID, "sessions"), what="the cluster view")


def test_sessions_of_both_backends_are_listed(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster, shots: Path
) -> None:
    driver, _ = page
    create(web_cluster, "api", "build-1", SHELL, ["fanout"])
    create(web_cluster, "ui", "build-2", SHELL, ["fanout", "front"])
    wait_for(lambda: row(driver, "build-1/api") and row(driver, "build-2/ui"), what="both sessions")
    servers = wait_for(
        lambda: [
            (r.get_attribute("data-server"), "healthy" in r.text)
            for r in driver.find_elements(By.CSS_SELECTOR, "table.servers tbody tr")
        ],
        what="the servers",
    )
    assert servers == [("hub", True), ("build-1", True), ("build-2", True)]
    assert "fanout" in row_text(driver, "build-1/api")
    wait_for(lambda: "bash" in row_text(driver, "build-1/api"), what="the foreground")
    driver.save_screenshot(str(shots / "cluster.png"))


def test_filters_by_tag_and_server(page: tuple[WebDriver, WebProc], web_cluster: Cluster) -> None:
    driver, _ = page
    wait_for(lambda: row(driver, "build-2/ui"), what="ui listed")
    Select(driver.find_element(By.ID, "filter-tag")).select_by_value("front")
    wait_for(lambda: row(driver, "build-1/api") is None, what="api filtered out")
    assert row(driver, "build-2/ui") is not None
    Select(driver.find_element(By.ID, "filter-tag")).select_by_value("")
    Select(driver.find_element(By.ID, "filter-server")).select_by_value("build-1")
    wait_for(lambda: row(driver, "build-2/ui") is None, what="build-2 filtered out")
    assert row(driver, "build-1/api") is not None
    Select(driver.find_element(By.ID, "filter-server")).select_by_value("")


def test_terminal_on_a_backend_session_echoes(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster, shots: Path
) -> None:
    driver, _ = page

    # Opened from the keyboard: focus the button, press Enter.
    def press_open() -> bool:
        api = row(driver, "build-1/api")
        if api is None:
            return False
        button = api.find_element(By.CSS_SELECTOR, '[data-action="open"]')
        driver.execute_script("arguments[0].focus()", button)
        button.send_keys(Keys.ENTER)
        return True

    wait_for(press_open, what="open api from the keyboard")
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#terminal textarea"), what="terminal")
    wait_for(lambda: "$" in terminal_text(driver), what="prompt")
    typed = driver.find_element(By.CSS_SELECTOR, "#terminal textarea")
    typed.send_keys("echo web-$((6*7))\n")
    wait_for(lambda: "web-42" in terminal_text(driver), what="the echo's output")
    driver.save_screenshot(str(shots / "terminal.png"))
    # The session's own screen says the same: the keys went through SendInput.
    assert web_cluster.stub is not None
    screen = web_cluster.stub.GetScreen(
        hub_pb2.GetScreenRequest(server="build-1", name="api"), timeout=10
    ).screen
    assert any(line.strip() == "web-42" for line in screen.lines)


def test_terminal_read_only_copy_and_scrollback(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster
) -> None:
    driver, _ = page
    if not driver.find_elements(By.ID, "terminal"):
        pytest.skip("needs the terminal of the previous test")
    typed = driver.find_element(By.CSS_SELECTOR, "#terminal textarea")
    typed.send_keys("seq 1 300\n")
    wait_for(lambda: "300" in terminal_text(driver), what="seq's last line")
    driver.find_element(By.ID, "read-only").click()
    typed.send_keys("echo ignored\n")
    driver.find_element(By.ID, "scrollback").click()
    label = wait_for(lambda: driver.find_element(By.ID, "scrollback-label").text, what="a page")
    assert label.startswith("lines ") and label.endswith(" of " + label.rsplit(" ", 1)[1])
    driver.find_element(By.ID, "scrollback-older").click()
    wait_for(
        lambda: driver.find_element(By.ID, "scrollback-label").text != label, what="older page"
    )
    lines = driver.find_element(By.ID, "scrollback-lines").text.splitlines()
    assert "1" in lines[:150] or lines[0].strip().isdigit()
    assert "ignored" not in terminal_text(driver)
    origin = driver.execute_script("return location.origin")
    driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    driver.find_element(By.ID, "copy").click()
    wait_for(lambda: "Copied" in driver.find_element(By.ID, "status").text, what="copy reported")
    copied = driver.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('! ' + e))"
    )
    # The screen as shown: seq's last lines and the prompt after them.
    assert "\n300\n" in copied, copied
    driver.find_element(By.ID, "read-only").click()
    # The keyboard's way out of the terminal (Tab belongs to the shell):
    # Ctrl+\, back to the session's Open button.
    typed.click()
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("\\").key_up(Keys.CONTROL).perform()
    wait_for(lambda: driver.find_elements(By.ID, "sessions"), what="back to the cluster")
    focused = driver.switch_to.active_element
    assert focused.get_attribute("data-key") == "build-1/api#open"


def test_terminal_follows_window_size(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster
) -> None:
    driver, _ = page
    open_cluster(driver)
    create(web_cluster, "sized", "build-2", SHELL, [])
    click_action(driver, "build-2/sized", "open")
    assert web_cluster.stub is not None
    stub_ = web_cluster.stub

    def size() -> tuple[int, int]:
        session = stub_.GetSession(
            hub_pb2.GetSessionRequest(server="build-2", name="sized"), timeout=10
        ).session
        return session.cols, session.rows

    wide = wait_for(lambda: size() if size() != (80, 24) else None, what="fit to the window")
    driver.set_window_size(900, 700)
    try:
        narrow = wait_for(lambda: size() if size()[0] < wide[0] else None, what="narrower")
        assert narrow[0] < wide[0]
    finally:
        driver.set_window_size(1280, 800)
    driver.find_element(By.ID, "close-terminal").click()


def test_session_appears_and_exits_live(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster, shots: Path
) -> None:
    driver, _ = page
    open_cluster(driver)
    # Made directly on the backend: the hub learns it from the Link.
    channel, backend = stub(web_cluster.backends["build-2"].addr)
    try:
        backend.CreateSession(
            hub_pb2.CreateSessionRequest(name="blink", command="sleep 2; exit 3"), timeout=15
        )
    finally:
        channel.close()
    wait_for(lambda: row(driver, "build-2/blink"), what="blink appears")
    wait_for(lambda: "exit 3" in row_text(driver, "build-2/blink"), timeout=30, what="blink exits")
    assert (
        wait_for(
            lambda: (r := row(driver, "build-2/blink")) and r.get_attribute("data-activity"),
            what="its activity",
        )
        == "exited"
    )
    driver.save_screenshot(str(shots / "exited.png"))


def test_create_rename_retag_and_kill_from_the_page(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster
) -> None:
    driver, _ = page
    open_cluster(driver)
    driver.find_element(By.ID, "create-name").send_keys("made")
    wait_for(lambda: "build-1" in driver.find_element(By.ID, "create-server").text, what="servers")
    Select(driver.find_element(By.ID, "create-server")).select_by_value("build-1")
    driver.find_element(By.ID, "create-command").send_keys(SHELL)
    driver.find_element(By.ID, "create-tags").send_keys("one, two")
    driver.find_element(By.ID, "create-submit").click()
    wait_for(lambda: "one" in row_text(driver, "build-1/made"), what="made appears")
    assert "two" in row_text(driver, "build-1/made")

    click_action(driver, "build-1/made", "rename")
    field = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, '[data-key="build-1/made#edit"]'), what="edit"
    )
    field.clear()
    field.send_keys("renamed\n")
    wait_for(lambda: row(driver, "build-1/renamed"), what="renamed")

    click_action(driver, "build-1/renamed", "tags")
    field = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, '[data-key="build-1/renamed#edit"]'),
        what="tags edit",
    )
    field.clear()
    field.send_keys("two, three\n")
    wait_for(
        lambda: "three" in (text := row_text(driver, "build-1/renamed")) and "one" not in text,
        what="retagged",
    )
    assert web_cluster.stub is not None
    session = web_cluster.stub.GetSession(
        hub_pb2.GetSessionRequest(server="build-1", name="renamed"), timeout=10
    ).session
    assert list(session.tags) == ["three", "two"]

    click_action(driver, "build-1/renamed", "kill")
    wait_for(lambda: "Confirm" in row_text(driver, "build-1/renamed"), what="kill asks to confirm")
    click_action(driver, "build-1/renamed", "kill")
    wait_for(lambda: row(driver, "build-1/renamed") is None, what="killed")
    with pytest.raises(grpc.RpcError) as err:
        web_cluster.stub.GetSession(
            hub_pb2.GetSessionRequest(server="build-1", name="renamed"), timeout=10
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_race_shows_sessions_settling_in_order(
    page: tuple[WebDriver, WebProc], web_cluster: Cluster, shots: Path
) -> None:
    driver, _ = page
    # Busy printing for 1.5 s, so it settles (500 ms of quiet) well after quick.
    busy = "for i in $(seq 15); do echo $i; sleep 0.1; done; sleep 600"
    create(web_cluster, "slow", "build-1", busy, ["racing"])
    create(web_cluster, "quick", "build-2", "echo hi; sleep 600", ["racing"])
    driver.find_element(By.ID, "nav-race").click()
    wait_for(lambda: "racing" in driver.find_element(By.ID, "race-tag").text, what="the racing tag")
    Select(driver.find_element(By.ID, "race-tag")).select_by_value("racing")
    driver.find_element(By.ID, "race-start").click()
    results = wait_for(
        lambda: (
            len(items := driver.find_elements(By.CSS_SELECTOR, "#race-results li")) >= 2 and items
        ),
        timeout=30,
        what="two results",
    )
    assert [r.get_attribute("data-session") for r in results[:2]] == [
        "build-2/quick",
        "build-1/slow",
    ]
    driver.save_screenshot(str(shots / "race.png"))
    driver.find_element(By.ID, "race-stop").click()
    wait_for(lambda: "Stopped" in driver.find_element(By.ID, "race-state").text, what="stopped")


def test_narrow_window_has_no_sideways_scroll(page: tuple[WebDriver, WebProc], shots: Path) -> None:
    driver, _ = page
    open_cluster(driver)
    driver.set_window_size(420, 800)
    try:
        wait_for(lambda: driver.execute_script("return window.innerWidth") < 500, what="resized")
        overflow = driver.execute_script(
            "return document.documentElement.scrollWidth - window.innerWidth"
        )
        driver.save_screenshot(str(shots / "narrow.png"))
        assert overflow <= 0
    finally:
        driver.set_window_size(1280, 800)


def test_console_has_no_errors(page: tuple[WebDriver, WebProc]) -> None:
    """Runs after the tests above on the same page: nothing they did logged an error."""
    driver, _ = page
    assert browser_errors(driver) == []


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("guarded")
    (tmp / "token").write_text(TOKEN)
    (tmp / "token").chmod(0o600)
    with ServerProc(
        "guarded", "--config", str(tmp / "hub.toml"), "--token-file", str(tmp / "token")
    ) as proc:
        yield proc


def test_token_typed_once_stays_out_of_the_url(
    guarded: ServerProc, tmp_path: Path, shots: Path
) -> None:
    (tmp_path / "token").write_text(TOKEN)
    with WebProc(guarded.addr, "--token-file", str(tmp_path / "token")) as web:
        driver = chromium(tmp_path / "profile")
        try:
            driver.get(web.url)
            wait_for(
                lambda: "token" in driver.find_element(By.ID, "status").text, what="asks for it"
            )
            # The refused calls show in the console as failed requests? No:
            # gRPC-Web answers 200 with the status in the body.
            driver.find_element(By.ID, "token-input").send_keys(TOKEN + "\n")
            wait_for(
                lambda: driver.find_elements(
                    By.CSS_SELECTOR, 'table.servers tr[data-server="guarded"]'
                ),
                what="the hub listed",
            )
            assert TOKEN not in driver.current_url
            stored = driver.execute_script("return sessionStorage.getItem('wsh.token')")
            assert stored == TOKEN
            assert driver.find_element(By.ID, "token-input").get_attribute("value") == ""
            driver.save_screenshot(str(shots / "token.png"))
            assert browser_errors(driver) == []
        finally:
            driver.quit()
        _, log = web.stop()
    assert TOKEN not in log
