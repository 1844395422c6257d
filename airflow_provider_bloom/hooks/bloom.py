"""BloomHook: an Airflow connection turned into a Bloom client that speaks all of Bloom's API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowNotFoundException
from airflow.sdk import BaseHook

from airflow_provider_bloom.client.operations import JSON, BloomOperations
from airflow_provider_bloom.client.retry import backoff, is_transient, retry_after
from airflow_provider_bloom.client.settings import ClientSettings
from airflow_provider_bloom.client.spec import DEFAULT_BASE_URL, check_ids, check_uuid
from airflow_provider_bloom.exceptions import (
    BloomAuthError,
    BloomError,
    BloomForbiddenError,
    BloomInputError,
    BloomNotFoundError,
    BloomTransportError,
)
from airflow_provider_bloom.hooks.connection import (
    API_PATH,
    CONN_FIELDS,
    settings_from_connection,
    ui_field_behaviour,
)
from airflow_provider_bloom.logic.records import BrandStatus
from airflow_provider_bloom.logic.waiting import PendingImages, check_poll_timeout, wait_window

# The client (and httpx under it) is imported when a client is built, not when a DAG file is
# parsed: an operator module only needs this hook's class.
if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_bloom.client.core import Exchange, PreparedCall
    from airflow_provider_bloom.client.files import Download
    from airflow_provider_bloom.client.operations import CallParts
    from airflow_provider_bloom.client.transport import AsyncBloomClient, BloomClient

#: Sends one prepared call and returns Bloom's ``data`` payload.
Send = Callable[["PreparedCall"], JSON]


class BloomHook(BaseHook, BloomOperations[JSON]):
    """Interact with Bloom (trybloom.ai) through an Airflow connection of type ``bloom``.

    Host is Bloom's base URL (empty: ``https://www.trybloom.ai/api/v1``), the
    password is the API key (``bloom_sk_...``) or an OAuth access token. Extras: ``api_path`` (the path
    added to a base URL without one: ``/api/v1`` by default, ``/`` for a server serving the API at its root),
    ``auth_scheme`` (``x-api-key``/``bearer``; ``auth_header`` is read too), ``workspace_id``,
    ``brand_session_id``, ``timeout``, ``max_retries``, ``wait_requests_per_minute``, ``prices`` (credit
    price overrides, see :mod:`airflow_provider_bloom.logic.prices`), and optional
    OAuth client credentials (``oauth_client_id``, ``oauth_client_secret``, ``oauth_token_url``).

    Every Bloom operation is a method (see :class:`~airflow_provider_bloom.client.operations.BloomOperations`)
    returning Bloom's ``data`` payload. Operators reach Bloom only through this hook: a paid call in two
    steps (:meth:`prepare`, then :meth:`send`, so the task's ledger keys it before it goes out),
    :meth:`single_try` for senders that pace and retry themselves, :meth:`paginate`, :meth:`open_download`
    and :meth:`observe_answers`.

    :param bloom_conn_id: the connection to use (default ``bloom_default``).
    """

    conn_name_attr = "bloom_conn_id"
    default_conn_name = "bloom_default"
    conn_type = "bloom"
    hook_name = "Bloom"

    def __init__(self, bloom_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bloom_conn_id = bloom_conn_id

    def __repr__(self) -> str:
        return f"<BloomHook conn_id={self.bloom_conn_id!r}>"

    # -- connection form ------------------------------------------------------------------
    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields (read by Airflow 3.1; 3.2+ reads the provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Typed form fields for Airflow 3.1, which builds the form from the hook.

        Airflow 3.2+ reads ``conn-fields`` from the provider info and never calls this. Numbers become
        integer fields, the OAuth client secret a password field, the auth header a choice with
        ``x-api-key`` preselected; the defaults fill the form like ``conn-fields``' ``default``.
        """
        try:
            from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
            from wtforms import IntegerField, PasswordField, StringField
            from wtforms.validators import Optional, any_of
        except ImportError:
            return {}
        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            schema = spec["schema"]
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            kwargs: dict[str, Any] = {"description": spec["description"]}
            if "default" in schema:
                kwargs["default"] = schema["default"]
            validators: list[Any] = [] if "enum" in schema else [Optional()]
            if "enum" in schema:
                validators.append(any_of([v for v in schema["enum"] if v is not None]))
            if schema.get("format") == "password":
                field_cls, widget = PasswordField, BS3PasswordFieldWidget
            elif "integer" in types:
                field_cls, widget = IntegerField, BS3TextFieldWidget
            else:
                field_cls, widget = StringField, BS3TextFieldWidget
            widgets[name] = field_cls(spec["label"], validators=validators, widget=widget(), **kwargs)
        return widgets

    # -- clients ---------------------------------------------------------------------------
    @cached_property
    def settings(self) -> ClientSettings:
        return settings_from_connection(self.get_connection(self.bloom_conn_id))

    def get_conn(self) -> BloomClient:
        return self.client

    @cached_property
    def client(self) -> BloomClient:
        from airflow_provider_bloom.client.transport import BloomClient

        return BloomClient(self.settings)

    def single_try_client(self, connections: int = 10) -> BloomClient:
        """A new client that sends each request once (no retries), with ``connections`` pooled
        connections: for callers that pace and retry themselves, from several threads (the batch
        operators; the client is thread-safe). Close it when done."""
        from airflow_provider_bloom.client.transport import BloomClient

        return BloomClient(replace(self.settings, max_retries=0), max_connections=max(1, connections))

    async def aget_settings(self) -> ClientSettings:
        """Settings from an async connection lookup: safe inside the triggerer's event loop.

        Uses common-compat's ``get_async_connection`` (which avoids the sync secret masking
        that deadlocks before Airflow 3.3.2). Under ``dag.test()`` inline triggers cannot reach
        metastore connections asynchronously; the sync lookup then runs in a worker thread.
        """
        from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
        from asgiref.sync import sync_to_async

        try:
            conn = await get_async_connection(self.bloom_conn_id, hook=self)
        except AirflowNotFoundException:
            conn = await sync_to_async(self.get_connection)(self.bloom_conn_id)
        extras = await get_async_extra_dejson(conn)
        return settings_from_connection(conn, extras=extras)

    async def aget_client(self) -> AsyncBloomClient:
        """A new :class:`AsyncBloomClient`; close it (``async with``) when done."""
        from airflow_provider_bloom.client.transport import AsyncBloomClient

        return AsyncBloomClient(await self.aget_settings())

    def _call(self, operation_id: str, **parts: Unpack[CallParts]) -> JSON:
        return self.send(self.prepare(operation_id, **parts))

    # -- what operators build on -----------------------------------------------------------
    def prepare(self, operation_id: str, **parts: Unpack[CallParts]) -> PreparedCall:
        """Check the call's parts against Bloom's spec and build the request; send nothing.

        Raise :class:`~airflow_provider_bloom.exceptions.BloomInputError` naming a bad argument. The
        connection's ``brand_session_id``/``workspace_id`` fill what the call leaves out.
        """
        return self.client.prepare(operation_id, **parts)

    def send(self, call: PreparedCall) -> JSON:
        """Send a prepared call under the client's retry policy and return Bloom's ``data`` payload.

        A paid call is sent again only when it provably never reached Bloom or was answered 429.
        """
        return self.client.execute(call)

    @contextmanager
    def single_try(self, connections: int = 10) -> Iterator[Send]:
        """Yield a sender that sends each call once (no retries), safe to share between threads.

        For callers that pace and retry themselves (the batch operators); ``connections`` sizes its
        connection pool. Its connections close when the block ends.
        """
        client = self.single_try_client(connections=connections)
        try:
            yield client.execute
        finally:
            client.close()

    def paginate(self, list_method: Callable[..., JSON], key: str, **filters: Any) -> Iterator[JSON]:
        """Yield every record of a list operation's pages, following ``nextCursor`` lazily.

        :param list_method: a list operation of this hook (``self.list_images``, ``self.list_brands``).
        :param key: the page's field holding the records (``"images"``, ``"brands"``).
        :param filters: the list operation's arguments; ``cursor`` starts from that page.
        """
        cursor = filters.pop("cursor", None)
        while True:
            page = list_method(cursor=cursor, **filters)
            yield from page.get(key, [])
            cursor = page.get("nextCursor")
            if not page.get("hasMore") or not cursor:
                return

    def absolute_url(self, url: str) -> str:
        """Resolve an image's ``url`` (Bloom may give a short path such as ``/img/{id}``) to a full URL."""
        return self.client.absolute_url(url)

    @contextmanager
    def open_download(self, url: str, *, timeout: float | None = None) -> Iterator[Download]:
        """Open an image URL for streaming and yield its body and headers.

        Yield a :class:`~airflow_provider_bloom.client.files.Download`. Follow Bloom's redirects,
        sending the credentials only to the base URL's origin; retry transient failures before the
        body starts (downloads are free). Raise only Bloom errors.
        """
        with self.client.open_download(url, timeout=timeout) as download:
            yield download

    @contextmanager
    def observe_answers(self, callback: Callable[[Exchange], None]) -> Iterator[None]:
        """Call ``callback`` with each answer's status, ``Date`` header and timing while inside.

        Covers every answer to a call this hook sends in the block, retries and error answers too.
        """
        with self.client.observe_answers(callback):
            yield

    def iter_images(self, **filters: Any) -> Iterator[JSON]:
        """Yield every image matching ``filters`` (``list_images`` arguments), following ``nextCursor``."""
        if filters.get("wait"):
            raise BloomInputError("wait", "iter_images pages through images; use wait_for_images to wait")
        return self.paginate(self.list_images, "images", **filters)

    def iter_brands(self, workspace_id: str | None = None, limit: int | None = None) -> Iterator[JSON]:
        """Yield every brand, following ``nextCursor``."""
        return self.paginate(self.list_brands, "brands", workspace_id=workspace_id, limit=limit)

    def wait_for_images(
        self,
        ids: list[str] | str,
        timeout: float = 600,
        poll_timeout: int = 295,
        include_urls: bool | None = None,
        *,
        retry_transient: bool = True,
        retry_delay: float = 1.0,
    ) -> list[JSON]:
        """Long-poll ``GET /images?ids=...&wait=true`` per chunk of <= 50 ids until all are terminal.

        Returns the image records in the order of ``ids``; images still running at the deadline
        are returned as they are (check their ``status``; an id never answered has ``status`` None).
        The decisions are those of
        :class:`~airflow_provider_bloom.logic.waiting.PendingImages`, shared with the triggerer: an id
        Bloom does not return raises ``BloomImagesMissingError``. Each long-poll is sent once (not under
        the client's own retries, which could outlast ``timeout``); a transient error
        (:func:`~airflow_provider_bloom.client.retry.is_transient`) is asked again after the one backoff
        of :mod:`~airflow_provider_bloom.client.retry` (base ``retry_delay``), never past the deadline,
        unless ``retry_transient`` is False (then it is raised at once).
        """
        if isinstance(ids, str):
            ids = [ids]
        state = PendingImages(check_ids("ids", list(ids), maximum=len(ids) or 1))
        check_poll_timeout(poll_timeout)
        client = self.client
        deadline = time.monotonic() + timeout
        failures = 0
        while not state.done and (left := deadline - time.monotonic()) > 0:
            for batch in state.batches():
                window = wait_window(left, poll_timeout)
                query = {"ids": batch, "wait": True, "timeout": window, "include_urls": include_urls}
                try:
                    page = client.execute(client.prepare("images.list", query=query), retry=False)
                except BloomError as exc:
                    if not retry_transient or not is_transient(exc):
                        raise
                    failures += 1
                    left = deadline - time.monotonic()
                    time.sleep(backoff(failures, base=retry_delay, retry_after=retry_after(exc), left=left))
                    break
                failures = 0
                state.apply(batch, page)
                if (left := deadline - time.monotonic()) <= 0:
                    break
        return state.ordered()

    def wait_for_brand(
        self, brand_id: str, timeout: float, *, retry_transient: bool = True, retry_delay: float = 1.0
    ) -> JSON:
        """Long-poll ``GET /brands/{id}?wait=true`` until onboarding ends or ``timeout`` seconds pass.

        Returns the brand as last seen (check its ``status``). As :meth:`wait_for_images`: each long-poll
        is sent once, a transient error is asked again after the one backoff within the deadline (or
        raised at once when ``retry_transient`` is False), and raised when no answer came by the deadline.
        """
        check_uuid("brand_id", brand_id)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise BloomInputError("timeout", f"must be a positive number of seconds; got {timeout!r}")
        client = self.client
        deadline = time.monotonic() + timeout
        failures = 0
        brand: JSON | None = None
        error: BloomError | None = None
        while (left := deadline - time.monotonic()) > 0:
            query = {"wait": True, "timeout": wait_window(left)}
            try:
                brand = client.execute(
                    client.prepare("brands.get", path={"id": brand_id}, query=query), retry=False
                )
            except BloomError as exc:
                if not retry_transient or not is_transient(exc):
                    raise
                error, failures = exc, failures + 1
                left = deadline - time.monotonic()
                time.sleep(backoff(failures, base=retry_delay, retry_after=retry_after(exc), left=left))
                continue
            failures = 0
            if BrandStatus.is_terminal(brand.get("status")):
                break
        if brand is None:
            assert error is not None  # the loop ran at least once: an answer or an error
            raise error
        return brand

    def test_connection(self) -> tuple[bool, str]:
        """Check the connection with GET /account (the UI's Test action and ``airflow connections test``).

        A failure says what to fix: the base URL's path, the key, or the host.
        """
        from airflow_provider_bloom.client.transport import BloomClient

        try:
            settings = self.settings
            account = BloomClient(replace(settings, max_retries=min(settings.max_retries, 1))).get_account()
        except BloomInputError as exc:
            return False, f"The connection is not valid: {exc}"
        except (BloomAuthError, BloomForbiddenError) as exc:
            what = "OAuth client ID and secret" if self.settings.uses_oauth else "API key"
            missing = not (self.settings.api_key or self.settings.uses_oauth)
            fix = f"no {what} is set" if missing else f"check the {what} and the auth header choice"
            return False, f"{exc}. Bloom refused the credentials: {fix}."
        except BloomNotFoundError as exc:
            return False, (
                f"{exc}. Nothing answers GET {self.settings.base_url}/account: the base URL must be "
                f"Bloom's API root, ending in {API_PATH} (e.g. {DEFAULT_BASE_URL}); for a server that "
                "serves Bloom's API at its root (a gateway, a spec mock), set the extra api_path to /."
            )
        except BloomTransportError as exc:
            hint = (
                ""
                if not exc.retryable
                else (
                    f". Check the base URL's host and port ({self.settings.base_url}) and that the server "
                    "is reachable from this machine"
                )
            )
            return False, f"{exc}{hint}"
        except BloomError as exc:
            return False, str(exc)
        except Exception as exc:  # a misconfigured connection must report, not crash the UI
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected to Bloom at {self.settings.base_url} as {account.get('email')}"
