"""A review of Bloom images in Airflow's own UI, in a real browser (Debian's Chromium driven by Playwright).

The api-server of tests/browser/uistack.py and the emulator; ``airflow dags test`` (sharing the
metadata DB with the api-server) runs a DAG that generates two images and asks for their review, which
waits for input. The task's Required Actions page shows each image as a loaded thumbnail (the browser
fetches Bloom's short link, which redirects to a signed URL; no key), the prompts and the buttons;
answering there resumes the task. A screenshot of the page is kept under test-artifacts/browser/.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import airflow
import pytest
from packaging.version import Version

from tests.browser.conftest import ARTIFACTS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    # `airflow dags test` on 3.1/3.2 runs a deferred task's trigger in its own process, whose supervisor
    # cannot read HITL details (the run fails: "Unhandled request GetHITLDetailResponse"). The review
    # on 3.1 is proven in a real deployment instead: tests/e2e/test_review_e2e.py in the version suite.
    pytest.mark.skipif(
        Version(Version(airflow.__version__).base_version) < Version("3.3"),
        reason="airflow dags test cannot run HITLTrigger before 3.3; see tests/e2e/test_review_e2e.py",
    ),
]

KEY = "bloom_sk_browser_review_0123456789"
CONN_ID = "bloom_review_ui"
DAG_ID = "bloom_ui_review"
PROMPTS = ["a kite over the dunes", "a red lantern at dusk"]


def review_dag() -> str:
    return textwrap.dedent(
        f"""
        import pendulum
        from airflow.sdk import DAG
        from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
        from airflow_provider_bloom.operators.review import BloomImageReviewOperator

        with DAG({DAG_ID!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1)):
            made = BloomGenerateImageOperator.partial(
                task_id="generate", wait_for_completion=True, bloom_conn_id={CONN_ID!r}
            ).expand(prompt={PROMPTS!r})
            BloomImageReviewOperator(
                task_id="review", images=made.output, subject="Review the kites", bloom_conn_id={CONN_ID!r}
            )
        """
    )


def wait_for(what: str, predicate, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.5)


def test_the_required_action_page_shows_the_thumbnails_and_answering_resumes_the_task(page, ui_stack):
    if not ui_stack.connection_saved(CONN_ID):
        ui_stack.add_connection(CONN_ID, KEY)
    (ui_stack.dags / f"{DAG_ID}.py").write_text(review_dag())
    runner = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", DAG_ID],
        env=ui_stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        run: dict = {}

        def waiting() -> bool:
            runs = ui_stack.api("GET", f"/dags/{DAG_ID}/dagRuns").json().get("dag_runs", [])
            if not runs:
                return False
            run.update(runs[0])
            path = f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/review"
            return ui_stack.api("GET", path).json().get("state") in ("awaiting_input", "deferred")

        try:
            wait_for("the review to wait for input", waiting)
        except AssertionError:
            runner.kill()
            raise AssertionError(
                f"no review waits; airflow dags test said:\n{runner.communicate()[0][-4000:]}"
            ) from None
        run_id = run["dag_run_id"]

        page.goto(f"{ui_stack.url}/dags/{DAG_ID}/runs/{run_id}/tasks/review/required_actions")
        thumbs = page.locator("img[alt^='image ']")
        thumbs.first.wait_for()
        assert thumbs.count() == 2
        # Each thumbnail loaded (the browser followed the short link's redirect to the signed file).
        loaded = "i => i.complete && i.naturalWidth > 0"
        page.wait_for_function(
            f"() => [...document.querySelectorAll(\"img[alt^='image ']\")].every({loaded})"
        )
        sources = [str(thumbs.nth(i).get_attribute("src")) for i in range(2)]
        assert all(s.startswith(f"{ui_stack.emulator_url}/img/") and KEY not in s for s in sources)
        ids = [s.rsplit("/", 1)[1] for s in sources]
        for prompt in PROMPTS:
            assert page.get_by_text(prompt).count() >= 1
        for button in ("Approve all", "Reject all", "Submit per-image decisions"):
            assert page.get_by_role("button", name=button).count() == 1, button
        folder = ARTIFACTS / f"airflow-{airflow.__version__}"
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "review_required_action.png"), full_page=True)

        page.get_by_role("button", name="Approve all").click()
        wait_for("the dag test run to end", lambda: runner.poll() is not None, timeout=120)
        output = runner.stdout.read() if runner.stdout else ""
        assert runner.returncode == 0, output[-3000:]
        path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/xcomEntries/return_value"
        value = ui_stack.api("GET", path).json()["value"]
        result = json.loads(value) if isinstance(value, str) else value
        assert sorted(result["approved"]) == sorted(ids) and result["timed_out"] is False
        assert result["responded_by"]  # the UI's user
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(10)
