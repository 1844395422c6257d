"""The `bloom` connection form as Airflow's UI receives it, on whichever Airflow version is installed.

Airflow 3.1 builds the form from ``BloomHook.get_ui_field_behaviour()`` and
``get_connection_form_widgets()``; 3.2+ reads ``conn-fields`` and ``ui-field-behaviour`` from the provider
info. Both paths end in the api-server's ``HookMetaService.hook_meta_data()``, which these tests call.
"""

from __future__ import annotations

import json
import logging
from importlib import resources

import jsonschema
import pytest

from airflow_provider_bloom import get_provider_info
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.hooks.connection import CONN_FIELDS, settings_from_connection


def airflow_schema(name: str) -> dict:
    return json.loads(resources.files("airflow").joinpath(name).read_text())


def test_hook_field_behaviour_is_valid_for_airflow():
    behaviour = BloomHook.get_ui_field_behaviour()
    jsonschema.validate(behaviour, airflow_schema("customized_form_field_behaviours.schema.json"))
    assert set(behaviour["hidden_fields"]) == {"schema", "port", "login"}
    assert behaviour["relabeling"] == {"host": "Base URL", "password": "API key"}


def test_provider_info_keeps_the_kebab_case_shape():
    (ctype,) = get_provider_info()["connection-types"]
    assert set(ctype["ui-field-behaviour"]) == {"hidden-fields", "relabeling", "placeholders"}
    jsonschema.validate(
        ctype, airflow_schema("provider.yaml.schema.json")["properties"]["connection-types"]["items"]
    )


@pytest.fixture(scope="module")
def bloom_form(request):
    """What GET /ui/connections/hook_meta returns for `bloom`, with the log of building it."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    handler = _ListHandler()
    logging.getLogger("airflow").addHandler(handler)
    try:
        meta = HookMetaService.hook_meta_data.__wrapped__()
    finally:
        logging.getLogger("airflow").removeHandler(handler)
    (bloom,) = [m for m in meta if m.connection_type == "bloom"]
    return bloom.model_dump(), handler.messages


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_airflow_loads_the_form_without_complaint(bloom_form):
    form, messages = bloom_form
    assert not [m for m in messages if "bloom" in m.lower()], messages
    assert form["hook_name"] == "Bloom"


def test_standard_fields_are_relabelled_hidden_and_have_placeholders(bloom_form):
    std = bloom_form[0]["standard_fields"]
    assert std["host"]["title"] == "Base URL"
    assert std["host"]["placeholder"] == "https://www.trybloom.ai/api/v1"
    assert std["password"]["title"] == "API key"
    assert std["password"]["placeholder"] == "bloom_sk_..."
    for hidden in ("port", "login", "url_schema"):
        assert std[hidden]["hidden"] is True, hidden
    assert not (std.get("description") or {}).get("hidden")


def test_extras_are_typed_with_defaults(bloom_form):
    extras = bloom_form[0]["extra_fields"]
    assert set(extras) == set(CONN_FIELDS)
    auth = extras["auth_scheme"]
    assert auth["value"] == "x-api-key"
    assert auth["schema"]["enum"] == ["x-api-key", "bearer"]  # a select without a `null` choice
    assert auth["schema"]["title"] == "Auth header"
    for name, default in (("timeout", 60), ("max_retries", 5), ("wait_requests_per_minute", 60)):
        field = extras[name]
        assert field["value"] == default and isinstance(field["value"], int), name
        assert "integer" in field["schema"]["type"], name
        assert f"default {default}" in field["description"], name
    assert "triggerers share a key" in extras["wait_requests_per_minute"]["description"]
    api_path = extras["api_path"]  # a server serving Bloom's API at its root is reached with "/"
    assert api_path["value"] == "/api/v1" and api_path["schema"]["title"] == "API path"
    assert "at its root" in api_path["description"]
    assert extras["oauth_client_secret"]["schema"]["format"] == "password"
    for name in ("brand_session_id", "workspace_id", "oauth_client_id", "oauth_token_url"):
        assert extras[name]["schema"].get("format") != "password", name
        assert extras[name]["value"] is None, name


class _Conn:
    host = "https://www.trybloom.ai/api/v1"
    password = "bloom_sk_abc"

    def __init__(self, extra: dict) -> None:
        self.extra_dejson = extra


def test_nulls_saved_by_the_form_mean_unset():
    """Airflow's form saves an extra left empty as JSON null: each one falls back to its default."""
    s = settings_from_connection(_Conn({name: None for name in CONN_FIELDS}))
    assert (s.auth_header, s.timeout, s.max_retries, s.wait_requests_per_minute) == ("x-api-key", 60, 5, 60)
    assert s.workspace_id is s.brand_session_id is s.oauth_client_id is s.oauth_token_url is None
    assert not s.uses_oauth


def test_form_defaults_make_the_documented_settings():
    values = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}
    s = settings_from_connection(_Conn(values))
    assert (s.auth_header, s.timeout, s.max_retries, s.wait_requests_per_minute) == ("x-api-key", 60, 5, 60)


@pytest.mark.parametrize("value", [0, 60001, "many"])
@pytest.mark.parametrize("name", ["wait_requests_per_minute", "requests_per_minute"])
def test_the_request_budgets_are_checked(name, value):
    with pytest.raises(BloomInputError, match=name):
        settings_from_connection(_Conn({name: value}))


@pytest.mark.parametrize("name", ["wait_requests_per_minute", "requests_per_minute"])
def test_a_plan_above_blooms_documented_120_a_minute_can_be_used(name):
    """Bloom documents 120 a minute per key; a plan may allow more, and the budgets accept it."""
    assert getattr(settings_from_connection(_Conn({name: 6000})), name) == 6000


def test_auth_scheme_wins_over_the_older_auth_header_extra():
    assert settings_from_connection(_Conn({"auth_scheme": "bearer"})).auth_header == "bearer"
    assert settings_from_connection(_Conn({"auth_header": "bearer"})).auth_header == "bearer"
    mixed = {"auth_scheme": "x-api-key", "auth_header": "bearer"}
    assert settings_from_connection(_Conn(mixed)).auth_header == "x-api-key"
    with pytest.raises(BloomInputError, match="auth_scheme"):
        settings_from_connection(_Conn({"auth_scheme": "cookie"}))


def test_no_form_field_is_masked_by_airflow_except_the_secret():
    """Airflow hides values of extras whose names look secret; only the client secret should be one."""
    try:
        from airflow.sdk._shared.secrets_masker import should_hide_value_for_key
    except ImportError:  # Airflow 3.1
        from airflow.sdk.execution_time.secrets_masker import should_hide_value_for_key
    masked = {name for name in CONN_FIELDS if should_hide_value_for_key(name)}
    assert masked == {"oauth_client_secret", "oauth_token_url"}


def test_wait_requests_per_minute_reaches_the_settings():
    assert settings_from_connection(_Conn({"wait_requests_per_minute": "30"})).wait_requests_per_minute == 30
