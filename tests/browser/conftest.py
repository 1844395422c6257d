"""Fixtures of the browser test: the api-server stack, Debian's Chromium through Playwright, screenshots."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.browser.uistack import CHROMIUM, CHROMIUM_ARGS, REPO, UiStack

ARTIFACTS = Path(os.environ.get("BLOOM_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_REPORT] = report
    return report


_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.fixture(scope="session")  # one api-server for both browser modules: each starts 15 s
def ui_stack(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/install_chromium.sh (make test does)")
    stack = UiStack(tmp_path_factory.mktemp("airflow-ui")).start()
    try:
        yield stack
    except BaseException:
        raise
    finally:
        stack.close()


@pytest.fixture(scope="session")
def browser_context():
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="bloom-chromium-")  # a fresh --user-data-dir per run
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1600},
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context, ui_stack, request):
    """A browser tab; on failure, a full-page screenshot and the page's HTML go to test-artifacts/."""
    tab = browser_context.new_page()
    tab.goto(ui_stack.url)  # the auto-login of a fresh session (3.1 then redirects to the home page)
    tab.wait_for_load_state("networkidle")
    yield tab
    report = request.node.stash.get(_REPORT, None)
    if report is not None and report.failed:
        import airflow

        folder = ARTIFACTS / f"airflow-{airflow.__version__}"
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        tab.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        (folder / f"{name}.html").write_text(tab.content())
        (folder / f"{name}.processes.log").write_text(ui_stack.tails())
        print(f"browser test artifacts: {folder / name}.*")
    tab.close()
