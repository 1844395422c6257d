"""BloomBrandSensor: wait until a brand's onboarding ends (``ready``), in a worker or the triggerer."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS, check_uuid
from airflow_provider_bloom.exceptions import BloomError
from airflow_provider_bloom.logic.records import (
    EVENT_STATUSES,
    BrandEvent,
    BrandRecord,
    BrandStatus,
    EventStatus,
    slim_brand,
)
from airflow_provider_bloom.tasks.base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    BloomBaseOperator,
    bloom_errors,
    check_wait_options,
    default_deferrable,
)
from airflow_provider_bloom.tasks.waiting import pre_wait, raise_for_error_event

if TYPE_CHECKING:
    from airflow.sdk import Context


class BloomBrandSensor(BaseSensorOperator, BloomBaseOperator):
    """Wait for a Bloom brand to finish onboarding.

    Succeeds when the brand is ``ready`` and returns the brand record (``id``, ``status``, ``name``,
    ``url``, ``logoUrl``...). Fails without retries when onboarding ``failed`` (with Bloom's failure
    code), and when Bloom needs a logo (``logo_required``) unless ``accept_logo_required=True``.

    Bloom's spec: only a ``ready`` brand can generate images; a ``logo_required`` brand answers
    409 ``BRAND_NOT_READY`` until it gets a logo (``BloomUpdateBrandLogoOperator``, then wait again).

    Each check is a long-poll (``GET /brands/{id}?wait=true``), so the sensor notices the end at once.
    With ``deferrable=True`` the wait runs in the triggerer (:class:`BloomBrandTrigger`).

    :param brand_id: the brand to watch (e.g. ``BloomCreateBrandOperator``'s output). Templated.
    :param accept_logo_required: end the wait on ``logo_required`` too and return the record (its
        ``status`` says which), e.g. to branch to ``BloomUpdateBrandLogoOperator``. The brand still cannot
        generate until it has a logo.
    :param poll_timeout: seconds each check may hold the request open (0-295; 0 = plain GET).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param timeout: give up after this many seconds (default one hour).
    :param poke_interval: seconds between checks in poke/reschedule mode.
    :param defer_after: deferrable mode: seconds to wait in the worker (one long-poll) before
        deferring, at most ``timeout`` (default 10; 0 defers at once).
    :param min_defer_seconds: deferrable mode: the trigger does not fire sooner than this after
        the deferral (default 10), which keeps Airflow's defer-exit race from failing the task.
    """

    template_fields: Sequence[str] = ("brand_id",)
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        brand_id: str,
        accept_logo_required: bool = False,
        poll_timeout: int = 60,
        deferrable: bool | None = None,
        timeout: float = 3600,
        poke_interval: float = 5,
        defer_after: float = DEFAULT_DEFER_AFTER,
        min_defer_seconds: float = DEFAULT_MIN_DEFER_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(timeout=timeout, poke_interval=poke_interval, **kwargs)
        check_wait_options(
            poll_timeout=poll_timeout or MAX_WAIT_SECONDS,
            on_failure="fail",
            defer_after=defer_after,
            min_defer_seconds=min_defer_seconds,
        )
        self.defer_after = float(defer_after)
        self.min_defer_seconds = float(min_defer_seconds)
        self.brand_id = brand_id
        self.accept_logo_required = accept_logo_required
        self.poll_timeout = poll_timeout
        self.deferrable = default_deferrable() if deferrable is None else deferrable

    def _fetch(self) -> BrandRecord:
        with bloom_errors(f"Checking Bloom brand {self.brand_id}"):
            check_uuid("brand_id", self.brand_id)
            timeout = self.poll_timeout or None  # 0: a plain GET
            answer = self.hook.get_brand(self.brand_id, wait=timeout is not None, timeout=timeout)
        return slim_brand(answer)

    def _brief_check(self, seconds: int) -> BrandRecord:
        """One plain GET (``seconds`` 0), or a wait of ``seconds`` sending each long-poll once."""
        check_uuid("brand_id", self.brand_id)
        if seconds <= 0:
            return slim_brand(self.hook.get_brand(self.brand_id))
        return slim_brand(self.hook.wait_for_brand(self.brand_id, timeout=seconds, retry_transient=False))

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            brand = self._fetch()
        except BloomError as exc:  # transient (permanent ones fail in _fetch): try again next poke
            self.log.warning("Could not check Bloom brand %s this time: %s", self.brand_id, exc)
            return False
        return self.decide(brand)

    def decide(self, brand: BrandRecord | Mapping[str, Any]) -> PokeReturnValue | bool:
        """Done (ready, or accepted logo_required), not yet (analyzing), or a clear failure."""
        status = brand.get("status")
        label = f"Bloom brand {brand.get('id') or self.brand_id}"
        if brand.get("url"):
            label += f" ({brand['url']})"
        if status == BrandStatus.READY:
            self.log.info("%s is %s", label, status)
            return PokeReturnValue(is_done=True, xcom_value=dict(brand))
        if status == BrandStatus.LOGO_REQUIRED and self.accept_logo_required:
            self.log.warning(
                "%s is logo_required (accepted): it cannot generate images until it has a logo "
                "(Bloom answers 409 BRAND_NOT_READY); give it one with BloomUpdateBrandLogoOperator",
                label,
            )
            return PokeReturnValue(is_done=True, xcom_value=dict(brand))
        if status == BrandStatus.FAILED:
            failure = brand.get("failure") or {}
            code = failure.get("code") or "UNKNOWN"
            message = str(failure.get("message") or "no message").rstrip(". ")
            raise AirflowFailException(
                f"{label} failed to onboard: Bloom {code}: {message}. "
                "Check the URL (a public website or Instagram profile) and create the brand again."
            )
        if status == BrandStatus.LOGO_REQUIRED:
            why = f" ({str(brand['logoError']).rstrip('. ')})" if brand.get("logoError") else ""
            raise AirflowFailException(
                f"{label} needs a logo: Bloom could not find a usable one{why}, and it cannot generate "
                "images until it has one (Bloom answers 409 BRAND_NOT_READY). Give it one with "
                f"BloomUpdateBrandLogoOperator(brand_id={brand.get('id') or self.brand_id!r}, logo_url=... "
                "or logo_file=...) and wait again with this sensor, or pass logo_url to "
                "BloomCreateBrandOperator up front."
            )
        self.log.info("%s is still %s", label, status)
        return False

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # Wait briefly in the worker first (defer_after): onboarding that ends by then needs no deferral.
        # A transient error there means "defer now", as for the image waits (pre_wait).
        started = time.time()
        brief = int(min(self.defer_after, self.timeout))  # never longer than the sensor's timeout
        brand = pre_wait(
            self.log,
            f"Checking Bloom brand {self.brand_id}",
            lambda: self._brief_check(brief),
        )
        done = self.decide(brand) if brand is not None else False
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        now = time.time()
        left = max(1.0, self.timeout - (now - started))
        from airflow_provider_bloom.triggers.brands import BloomBrandTrigger  # not at DAG-parse time

        self.defer(
            trigger=BloomBrandTrigger(
                brand_id=self.brand_id,
                bloom_conn_id=self.bloom_conn_id,
                deadline=now + left,
                poll_timeout=self.poll_timeout or MAX_WAIT_SECONDS,
                not_before=now + self.min_defer_seconds,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=left + 60),
        )

    def execute_complete(self, context: Context, event: BrandEvent | None = None) -> Any:
        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise AirflowFailException(f"Unexpected event from the Bloom brand trigger: {event!r:.300}")
        sent = event.get("brand")
        brand: Mapping[str, Any] = sent if isinstance(sent, dict) else {}
        if event["status"] == EventStatus.TIMEOUT:
            raise AirflowSensorTimeout(f"{event.get('message')} (timeout {self.timeout:g}s)")
        raise_for_error_event(event, f"Bloom brand {self.brand_id}")
        done = self.decide(brand)
        if not isinstance(done, PokeReturnValue):
            raise AirflowFailException(f"Bloom brand trigger fired before the brand was done: {event!r:.300}")
        return done.xcom_value
