"""A real Chromium (Debian's, through Playwright) logs in, waits on the progress page, runs a cell
in JupyterLab, and stops the server from the Hub Control Panel. Screenshots: test-artifacts/."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "hub-browser"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian chromium is not installed (apt-get install chromium; .ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_login_lab_run_cell_stop_from_control_panel(amalthea_hub, browser):
    hub = amalthea_hub
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    page.set_default_timeout(120_000)

    page.goto(hub.url + "/")
    page.wait_for_selector("#username_input")
    page.screenshot(path=str(ARTIFACTS / "01-login.png"))
    page.fill("#username_input", "alice")
    page.fill("#password_input", "anything")
    page.click("#login_submit")

    # /hub/spawn -> spawn-pending with the live progress bar, then JupyterLab
    page.wait_for_url("**/hub/spawn-pending/alice**")
    page.wait_for_selector("#progress-bar")
    page.screenshot(path=str(ARTIFACTS / "02-progress.png"))
    page.wait_for_url("**/user/alice/lab**", timeout=180_000)
    page.wait_for_selector(".jp-LauncherCard", timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "03-lab.png"))

    page.click('.jp-LauncherCard[data-category="Notebook"]')
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content")
    try:  # the kernel is ready when the status bar says Idle (slow on a loaded machine)
        page.locator("#jp-main-statusbar").get_by_text("Idle").first.wait_for(timeout=120_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "03b-kernel-not-idle.png"))
    cell = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    cell.click()
    page.keyboard.type("print(6*7)")
    assert "print(6*7)" in cell.inner_text()
    out = page.locator(".jp-NotebookPanel .jp-OutputArea-output").first
    for attempt in range(2):  # a keypress sent while the kernel was still connecting is lost
        cell.click()
        page.keyboard.press("Shift+Enter")
        try:
            out.wait_for(timeout=90_000)
            break
        except Exception:
            page.screenshot(path=str(ARTIFACTS / f"04-no-output-{attempt}.png"))
            if attempt:
                raise
    assert out.inner_text().strip() == "42"
    page.screenshot(path=str(ARTIFACTS / "04-cell-42.png"))

    # File > Hub Control Panel opens /hub/home in a new tab
    page.click('.lm-MenuBar-itemLabel:text-is("File")')
    with ctx.expect_page() as new_page:
        page.click('.lm-Menu-itemLabel:text-is("Hub Control Panel")')
    home = new_page.value
    home.set_default_timeout(60_000)
    home.wait_for_selector("#stop-default")
    home.screenshot(path=str(ARTIFACTS / "05-control-panel.png"))
    home.click("#stop-default")
    home.wait_for_selector("#start-default", timeout=60_000)
    home.screenshot(path=str(ARTIFACTS / "06-stopped.png"))
    ctx.close()
