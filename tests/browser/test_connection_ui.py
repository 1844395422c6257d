"""The Bloom connection in Airflow's own UI, in a real browser (Debian's Chromium driven by Playwright).

A real ``airflow api-server`` with this provider installed, and the Bloom emulator. A user adds a Bloom
connection through the form, tests it, and opens the image a DAG run made from the task's extra link.
Runs on the installed Airflow: 3.3 in ``make test``, 3.1 in ``scripts/test_airflow_versions.sh``.
"""

from __future__ import annotations

import json
import textwrap

import airflow
import pytest
from packaging.version import Version

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

AIRFLOW = Version(airflow.__version__)
KEY = "bloom_sk_browser_test_0123456789"
CONN_ID = "bloom_ui"


def open_new_bloom_form(page, ui_stack) -> None:
    add = page.get_by_role("button", name="Add Connection")
    page.goto(f"{ui_stack.url}/connections")
    try:
        add.wait_for(timeout=10_000)
    except Exception:  # Airflow 3.1 sends a new session to the home page once, after its login
        page.goto(f"{ui_stack.url}/connections")
    add.click()
    page.get_by_role("combobox").first.click()
    page.keyboard.type("Bloom")
    page.keyboard.press("Enter")
    page.locator("input[name=host]").wait_for()


def open_section(page, name: str) -> None:
    """The form's sections are an accordion: opening one closes the other."""
    section = page.get_by_role("button", name=name, exact=True)
    if section.get_attribute("aria-expanded") != "true":
        section.click()


def label_texts(page) -> set[str]:
    return {t.strip().rstrip("*").strip() for t in page.locator("label").all_inner_texts()}


def test_the_form_is_tailored(page, ui_stack):
    open_new_bloom_form(page, ui_stack)
    open_section(page, "Extra Fields")
    page.locator("input[name=element_timeout]").wait_for()
    labels = label_texts(page)
    assert {"Base URL", "API key", "Auth header", "Request timeout (s)", "Max retries", "API path"} <= labels
    assert {"Wait requests per minute", "OAuth client secret", "Default brand session ID"} <= labels
    assert not {"Host", "Port", "Login", "Schema", "Password"} & labels, labels  # hidden or relabelled
    for hidden in ("port", "login", "schema"):
        assert page.locator(f"input[name={hidden}]").count() == 0, hidden
    host, key = page.locator("input[name=host]"), page.locator("input[name=password]")
    assert host.get_attribute("placeholder") == "https://www.trybloom.ai/api/v1"
    assert key.get_attribute("placeholder") == "bloom_sk_..."
    # Secrets are masked as they are typed.
    assert key.get_attribute("type") == "password"
    secret = page.locator("input[name=element_oauth_client_secret]")
    if AIRFLOW >= Version("3.2"):
        assert secret.get_attribute("type") == "password"
    else:  # Airflow 3.1's form renders no extra as a password input (docs/connection.md); the schema says so
        assert secret.get_attribute("type") != "password"
    assert page.locator("input[name=element_oauth_client_id]").get_attribute("type") != "password"
    # Numbers are number inputs, filled with their defaults; help texts say the defaults.
    for name, default in (("timeout", "60"), ("max_retries", "5"), ("wait_requests_per_minute", "60")):
        field = page.locator(f"input[name=element_{name}]")
        assert field.input_value() == default, name
        assert field.get_attribute("role") == "spinbutton", name
    body = page.locator("body").inner_text()
    assert "default 60" in body and "default 5" in body and "triggerers share a key" in body
    # The auth header is a choice, x-api-key preselected, with no `null` among the choices.
    auth_box = page.get_by_role("combobox", name="Auth header")
    if auth_box.evaluate("e => e.tagName") == "BUTTON":  # Airflow 3.1's select
        assert auth_box.inner_text().strip() == "x-api-key"
    else:
        assert page.locator("[name=element_auth_scheme]").input_value() == "x-api-key"
    auth_box.click()
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    assert sorted(options) == ["bearer", "x-api-key"], options


def test_save_test_and_see_the_key_masked(page, ui_stack):
    open_new_bloom_form(page, ui_stack)
    page.locator("input[name=connection_id]").fill(CONN_ID)
    page.locator("input[name=host]").fill(ui_stack.emulator_url)  # as people type it: no /api/v1
    page.locator("input[name=password]").fill(KEY)
    open_section(page, "Extra Fields")
    page.locator("input[name=element_brand_session_id]").fill(DEFAULT_BRAND_ID)
    page.get_by_role("button", name="Save").click()
    page.get_by_text(CONN_ID, exact=True).first.wait_for()

    # What was saved: numbers as numbers, the auth header chosen, and the key.
    saved = ui_stack.stored_connection(CONN_ID)
    extra = json.loads(saved["extra"])
    assert saved["password"] == KEY and saved["host"] == ui_stack.emulator_url
    assert extra["auth_scheme"] == "x-api-key" and extra["brand_session_id"] == DEFAULT_BRAND_ID
    assert (extra["timeout"], extra["max_retries"], extra["wait_requests_per_minute"]) == (60, 5, 60)

    # The REST API the UI reads shows the key as ***.
    shown = ui_stack.api("GET", f"/connections/{CONN_ID}").json()
    assert shown["password"] == "***" and KEY not in json.dumps(shown)

    # The edit form shows *** for the key, never the key.
    page.goto(f"{ui_stack.url}/connections")
    page.get_by_role("button", name="Edit Connection").first.click()
    key_input = page.locator("input[name=password]")
    key_input.wait_for()
    assert key_input.input_value() == "***" and key_input.get_attribute("type") == "password"
    assert KEY not in page.content()
    page.keyboard.press("Escape")

    if AIRFLOW >= Version("3.3"):
        # The list's Test answers "Bad Request" on 3.3 (see docs/connection.md); the documented
        # alternative is the CLI.
        tested = ui_stack.airflow("connections", "test", CONN_ID)
        assert tested.returncode == 0, tested.stdout[-2000:] + tested.stderr[-2000:]
        assert "Connection success!" in tested.stdout
    else:
        page.goto(f"{ui_stack.url}/connections")
        page.get_by_role("button", name="Test Connection").first.click()
        page.get_by_text("Connected to Bloom", exact=False).first.wait_for()


def test_extra_link_opens_the_image(page, ui_stack):
    """After a small DAG run, the task's "Bloom image" button points at the image."""
    if not ui_stack.connection_saved(CONN_ID):
        ui_stack.add_connection(CONN_ID, KEY)
    dag_id = "bloom_ui_links"
    (ui_stack.dags / f"{dag_id}.py").write_text(
        textwrap.dedent(
            f"""
            import pendulum
            from airflow.sdk import DAG
            from airflow_provider_bloom.operators.images import BloomGenerateImageOperator

            with DAG({dag_id!r}, schedule=None, start_date=pendulum.datetime(2024, 1, 1)):
                BloomGenerateImageOperator(
                    task_id="gen", prompt="a kite over the dunes", variant_count=2, bloom_conn_id={CONN_ID!r}
                )
            """
        )
    )
    reserialized = ui_stack.airflow("dags", "reserialize")
    assert reserialized.returncode == 0, reserialized.stderr[-2000:]
    ran = ui_stack.airflow("dags", "test", dag_id)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    runs = ui_stack.api("GET", f"/dags/{dag_id}/dagRuns").json()["dag_runs"]
    (run,) = runs
    assert run["state"] == "success"
    ids = ui_stack.api(
        "GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/gen/xcomEntries/return_value"
    ).json()["value"]
    if isinstance(ids, str):
        ids = json.loads(ids.replace("'", '"'))
    assert len(ids) == 2

    page.goto(f"{ui_stack.url}/dags/{dag_id}/runs/{run['dag_run_id']}/tasks/gen")
    page.get_by_role("link", name="Details", exact=True).click()  # the task's extra links are there
    first = page.get_by_role("link", name="Bloom image", exact=True)
    first.wait_for()
    assert first.get_attribute("href") == f"{ui_stack.emulator_url}/img/{ids[0]}"
    second = page.get_by_role("link", name="Bloom image 2", exact=True)
    assert second.get_attribute("href") == f"{ui_stack.emulator_url}/img/{ids[1]}"
    assert page.get_by_role("link", name="Bloom image 3", exact=True).count() == 0
