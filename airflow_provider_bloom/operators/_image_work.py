"""The machinery of the operators that start paid image work (:mod:`.images`): arguments checked
against the spec (when the DAG is parsed, if known by then), the wait arguments, and one paid POST
per input image for the post-processing operators.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_bloom.client.spec import MAX_WAIT_SECONDS, check_value, get_operation, to_camel
from airflow_provider_bloom.exceptions import BloomError, BloomInputError
from airflow_provider_bloom.lineage import (
    append_provenance,
    attempt_records,
    derived_records,
    record_provenance,
)
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.logic.reconcile import Attempt, ImageQuery
from airflow_provider_bloom.logic.records import ImageStatus, flatten_image_ids
from airflow_provider_bloom.tasks.base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    BloomBaseOperator,
    bloom_errors,
    check_wait_options,
    default_deferrable,
    known_at_parse_time,
    literal_from_template,
    paid_step,
)
from airflow_provider_bloom.tasks.ledger import (
    CREDITS_XCOM_KEY,
    CreditMeter,
    PaidRequestLedger,
    credit_budget,
    has_id,
)
from airflow_provider_bloom.tasks.waiting import ImageCompletionMixin, images_from_event, resolve_images

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client.core import PreparedCall

#: Post-processing works on raster images; vectorize produces SVGs that nothing else accepts.
_VECTOR_ACTION = "vectorize"
#: What an operator does with a refused image: report it (as today), or make it again.
REFUSAL_MODES = ("report", "regenerate")
#: Bloom's advice for ``content_safety``: the more permissive model.
DEFAULT_FALLBACK_MODELS = ("standard",)
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds to pause before asking again for an image Bloom failed as ``rate_limited``.
DEFAULT_RETRY_PAUSE = 10.0
#: The model Bloom uses when a request names none (the spec: ``pro`` is the default).
BLOOM_DEFAULT_MODEL = "pro"
#: The XCom key of the attempts an operator made per request (``on_refused="regenerate"``).
ATTEMPTS_XCOM_KEY = "bloom_attempts"
#: Where the attempts in progress wait out a deferral.
_STATE_XCOM_KEY = "_bloom_attempts_in_progress"


@dataclass(frozen=True)
class RefusalPolicy:
    """What to do with an image Bloom failed: ``report`` it, or ``regenerate`` it.

    Regenerating makes a new paid request for the same input: after ``content_safety`` with the next
    model of ``fallback_models`` not tried yet (Bloom's advice: ``standard``), after ``rate_limited``
    with the same model once ``retry_pause`` seconds have passed; at most ``max_attempts`` requests per
    input (the first included). Any other failure, or a request of which some images completed, is final.
    """

    on_refused: str = "report"
    fallback_models: tuple[str, ...] = DEFAULT_FALLBACK_MODELS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    retry_pause: float = DEFAULT_RETRY_PAUSE

    @classmethod
    def checked(
        cls,
        operation: str,
        on_refused: str,
        fallback_models: Sequence[str] | str | None,
        max_attempts: int,
        retry_pause: float,
    ) -> RefusalPolicy:
        """The policy, every argument checked (BloomInputError names the field)."""
        if on_refused not in REFUSAL_MODES:
            raise BloomInputError("on_refused", f"must be one of {list(REFUSAL_MODES)}; got {on_refused!r}")
        if fallback_models is None:
            models: tuple[str, ...] = ()
        elif isinstance(fallback_models, str):
            models = (fallback_models,)
        else:
            models = tuple(fallback_models)
        for model in models:
            try:
                checked_argument(operation, "model", model)
            except BloomInputError as exc:
                raise BloomInputError("fallback_models", exc.problem) from None
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 10:
            raise BloomInputError(
                "max_attempts", f"must be a whole number from 1 to 10; got {max_attempts!r}"
            )
        if isinstance(retry_pause, bool) or not isinstance(retry_pause, (int, float)) or retry_pause < 0:
            raise BloomInputError("retry_pause", f"must be a number of seconds >= 0; got {retry_pause!r}")
        return cls(on_refused, models, max_attempts, float(retry_pause))

    @property
    def regenerates(self) -> bool:
        return self.on_refused == "regenerate"

    def next_attempt(self, attempts: Sequence[Mapping[str, Any]]) -> tuple[str | None, str] | None:
        """(model, reason) of the next attempt for one input, or None when its last attempt is final."""
        if not self.regenerates or not attempts or len(attempts) >= self.max_attempts:
            return None
        last = attempts[-1]
        statuses = last.get("statuses") or []
        if not statuses or any(status != "failed" for status, _ in statuses):
            return None
        reasons = {reason for _, reason in statuses}
        if "content_safety" in reasons:
            tried = {a.get("model") or BLOOM_DEFAULT_MODEL for a in attempts}
            untried = [m for m in self.fallback_models if m not in tried]
            return (untried[0], "content_safety") if untried else None
        if reasons == {"rate_limited"}:
            return last.get("model"), "rate_limited"
        return None


def attempt_summary(attempt: Mapping[str, Any]) -> dict[str, Any]:
    """One attempt as the result lists it: model, why it was made, its images and how they ended."""
    statuses = attempt.get("statuses") or []
    states = {status for status, _ in statuses}
    status = states.pop() if len(states) == 1 else ("partial" if states else "pending")
    reasons = sorted({reason for _, reason in statuses if reason})
    return {
        "model": attempt.get("model"),
        "reason": attempt.get("reason"),
        "image_ids": list(attempt.get("image_ids") or []),
        "status": status,
        "failure_reason": reasons[0] if len(reasons) == 1 else (reasons or None),
    }


def rendered_argument(name: str, value: Any) -> Any:
    """Return one argument as the spec types it: a rendered template is text.

    ``variant_count`` digits become a number, a list of reference ids written as text is read back as
    the list (ids or records flattened to ids). Checks nothing else: the hook's ``prepare`` does.
    """
    if name == "variant_count" and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if name == "reference_image_ids":
        value = literal_from_template(value)
        return None if value in (None, [], ()) else flatten_image_ids(value, name)
    return value


def checked_argument(operation: str, name: str, value: Any) -> Any:
    """Return one argument of ``operation`` rendered (:func:`rendered_argument`) and checked against the
    spec: the parse-time check (BloomInputError names the field)."""
    value = rendered_argument(name, value)
    if value is None:
        return None
    return check_value(name, value, get_operation(operation).body[to_camel(name)])


def untraceable_query(
    operation: str, action: str, body: Mapping[str, Any], exclude: Iterable[str]
) -> ImageQuery:
    """What a lost resize, remove-background or vectorize request would have created.

    Bloom's list gives such a result no prompt and no link to its source image, so it can never be told
    apart from the same operation on another image: a lost one is reported with what is found
    (``untraceable``), never adopted, never sent again.
    """
    return ImageQuery(
        operation=operation,
        action_type=action,
        brand_session_id=body.get("brandSessionId"),
        aspect_ratio=body.get("targetAspectRatio"),
        exclude=frozenset(exclude),
        untraceable=(
            f"Bloom's list gives a {action} result no prompt and no link to its source image, "
            f"so it cannot be told apart from a {action} of another image"
        ),
    )


def check_known_arguments(operation: str, values: Mapping[str, Any]) -> None:
    """Check the arguments already known when the DAG is parsed (no Jinja, no XComArg) against the spec."""
    for name, value in values.items():
        if value is not None and known_at_parse_time(value):
            checked_argument(operation, name, value)


def source_problems(
    ids: Sequence[str],
    records: Mapping[str, Mapping[str, Any]],
    action: str,
    source_problem: Callable[[Mapping[str, Any]], str | None],
) -> list[str]:
    """Why each of ``ids`` cannot be post-processed (``records``: Bloom's, by id): missing, not
    completed, or refused by ``source_problem``. Empty when every source can take ``action``."""
    problems = []
    for image_id in ids:
        record = records.get(image_id)
        problem = (
            status_problem(record, action) if record is not None else "was not found (deleted, or not yours)"
        )
        if problem is None and record is not None:
            problem = source_problem(record)
        if problem:
            problems.append(f"image {image_id} {problem}")
    return problems


def status_problem(record: Mapping[str, Any], action: str) -> str | None:
    """Why a source's status keeps it from ``action`` (None when it is completed, or carries no status)."""
    status = record.get("status")
    if status in (None, ImageStatus.COMPLETED):  # uploaded/scraped images may carry no status
        return None
    if status == ImageStatus.FAILED:
        reason = record.get("failureReason") or "no reason given"
        return f"failed ({reason}); there is nothing to {action}"
    return (
        f"is not completed yet (status {status!r}); wait for it first "
        "(BloomImageSensor, or wait_for_completion=True upstream)"
    )


class ImageWorkOperator(ImageCompletionMixin, BloomBaseOperator):
    """Starts paid image work (``operation``) and optionally waits for it (the wait arguments,
    checked here; ``deferrable=None`` follows ``[operators] default_deferrable``)."""

    operation: ClassVar[str]
    operator_extra_links = image_links()

    def __init__(
        self,
        *,
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        wait_timeout: float = 600,
        poll_timeout: int = MAX_WAIT_SECONDS,
        on_failure: str = "fail",
        include_urls: bool = False,
        defer_after: float = DEFAULT_DEFER_AFTER,
        min_defer_seconds: float = DEFAULT_MIN_DEFER_SECONDS,
        max_credits: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if known_at_parse_time(max_credits):
            credit_budget(max_credits)
        self.max_credits = max_credits
        self.refusal = RefusalPolicy()
        check_wait_options(
            poll_timeout=poll_timeout,
            on_failure=on_failure,
            timeout=wait_timeout,
            defer_after=defer_after,
            min_defer_seconds=min_defer_seconds,
        )
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.wait_timeout = float(wait_timeout)
        self.poll_timeout = poll_timeout
        self.on_failure = on_failure
        self.include_urls = include_urls
        self.defer_after = float(defer_after)
        self.min_defer_seconds = float(min_defer_seconds)

    def check_known(self, names: Sequence[str]) -> None:
        """Fail at parse time on what is already known; the rest is checked once rendered."""
        check_known_arguments(self.operation, {name: getattr(self, name) for name in names})

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the source images in, the new images out, their provenance.

        See :mod:`~airflow_provider_bloom.lineage`.
        """
        from airflow_provider_bloom.lineage import image_work_lineage

        return image_work_lineage(self, task_instance)

    def set_refusal_policy(
        self,
        on_refused: str,
        fallback_models: Sequence[str] | str | None,
        max_attempts: int,
        retry_pause: float,
    ) -> None:
        """Check and keep the refusal arguments (generate and edit)."""
        self.on_refused = on_refused
        self.fallback_models = fallback_models
        self.max_attempts = max_attempts
        self.retry_pause = retry_pause
        self.refusal = RefusalPolicy.checked(
            self.operation, on_refused, fallback_models, max_attempts, retry_pause
        )
        if self.refusal.regenerates and not self.wait_for_completion:
            raise BloomInputError(
                "on_refused",
                "'regenerate' needs wait_for_completion=True (a refusal is known once the image has ended)",
            )

    # -- credits ------------------------------------------------------------------------------
    def credit_meter(self, spent: Mapping[str, Any] | None = None) -> CreditMeter:
        """A meter for this try, with the rendered ``max_credits`` (``spent``: carried over a deferral)."""
        with bloom_errors("Checking max_credits"):
            meter = CreditMeter(budget=credit_budget(self.max_credits))
        if spent:
            meter.restore(spent)
        return meter

    def paid_ledger(self, context: Context, meter: CreditMeter) -> PaidRequestLedger:
        """This try's ledger, counting credits on ``meter``."""
        return PaidRequestLedger(
            context,
            self.log,
            reuse_on_clear=self.reuse_on_clear,
            meter=meter,
            prices=self.hook.settings.prices,
        )

    @contextmanager
    def spending(self, context: Context, meter: CreditMeter) -> Iterator[CreditMeter]:
        """Publish what ``meter`` counted (log + XCom ``bloom_credits``) however the block ends; not
        while deferring: the deferral carries the meter, and the resumed try publishes it."""
        from airflow.providers.common.compat.sdk import TaskDeferred

        try:
            yield meter
        except TaskDeferred:
            context["ti"].xcom_push(key=CREDITS_XCOM_KEY, value=meter.value())
            raise
        except BaseException:
            meter.publish(context, self.log)
            raise
        meter.publish(context, self.log)

    def finish(self, context: Context, ids: list[str]) -> Any:
        """Link the new images; return their ids, or (``wait_for_completion``) their records."""
        BloomImageLink.persist_all(context, self.hook.settings.base_url, ids)
        if not self.wait_for_completion:
            return ids
        return self.wait_or_defer(context, ids)

    # -- refused images -----------------------------------------------------------------------
    def attempt_call(self, key: str, model: str | None) -> PreparedCall:
        """The paid request for input ``key`` (a source image id, or ``"generation"``) with ``model``."""
        raise NotImplementedError

    def start_attempts(self, context: Context, requests: list[dict[str, Any]], meter: CreditMeter) -> Any:
        """Wait for the first attempts, regenerate refused images, and return the final records."""
        state = {"requests": requests}
        BloomImageLink.persist_all(context, self.hook.settings.base_url, _last_ids(state))
        return self._attempt_rounds(context, state, meter)

    def _attempt_rounds(self, context: Context, state: dict[str, Any], meter: CreditMeter) -> Any:
        # The caller publishes the meter (see spending).
        while True:
            waiting = [
                i
                for r in state["requests"]
                if not r["attempts"][-1].get("statuses")
                for i in r["attempts"][-1]["image_ids"]
            ]
            if waiting:
                records = self._wait_round(context, waiting, state, meter)
                _apply_statuses(state, records)
            again = [
                (request, step)
                for request in state["requests"]
                if (step := self.refusal.next_attempt(request["attempts"])) is not None
            ]
            if not again:
                break
            if any(reason == "rate_limited" for _, (_, reason) in again) and self.refusal.retry_pause:
                self.log.info(
                    "Bloom failed image(s) as rate_limited: pausing %.0fs", self.refusal.retry_pause
                )
                time.sleep(self.refusal.retry_pause)
            self._send_attempts(context, again, meter)
        return self._final(context, state)

    def _send_attempts(
        self, context: Context, again: list[tuple[dict[str, Any], tuple[str | None, str]]], meter: CreditMeter
    ) -> None:
        ledger = self.paid_ledger(context, meter)
        for request, (model, reason) in again:
            number = len(request["attempts"]) + 1
            model_name = model or BLOOM_DEFAULT_MODEL
            what = f"attempt {number} for {request['key']} on model {model_name} after {reason}"
            with bloom_errors(f"Bloom {self.operation} ({what})"):
                call = self.attempt_call(request["key"], model)
                answer = ledger.pay(
                    call,
                    functools.partial(self.paced, functools.partial(self.hook.send, call)),
                    valid=lambda a: bool(a.get("ids")) or has_id(a),
                    attempt=number,
                    what=what,
                )
            ids = [str(i) for i in answer["ids"]] if answer.get("ids") else [str(answer["id"])]
            self.log.warning(
                "Bloom failed the image(s) of %r (%s): sent %s; new image(s) %s",
                request["key"],
                reason,
                what,
                ids,
            )
            request["attempts"].append({"model": model, "reason": reason, "image_ids": ids})
            append_provenance(self, context, attempt_records(self, context, request["key"], call, ids))
            BloomImageLink.persist_all(context, self.hook.settings.base_url, ids)

    def _wait_round(
        self, context: Context, ids: list[str], state: dict[str, Any], meter: CreditMeter
    ) -> list[dict[str, Any]]:
        if self.deferrable:
            # XComs outlive a deferral (and dag.test() drops a deferral's kwargs): the resumed try
            # reads the attempts and the meter (``spending`` pushes it) back from there.
            return self.wait_briefly_or_defer(
                context, ids, lambda: context["ti"].xcom_push(key=_STATE_XCOM_KEY, value=state)
            )
        with bloom_errors("Waiting for Bloom images"):
            return self.hook.wait_for_images(
                list(ids),
                timeout=self.wait_timeout,
                poll_timeout=self.poll_timeout,
                include_urls=self.include_urls or None,
            )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        meter = self.credit_meter(_own_xcom(context, CREDITS_XCOM_KEY))
        with self.spending(context, meter):
            state = _own_xcom(context, _STATE_XCOM_KEY) if self.refusal.regenerates else None
            if not state:
                return super().execute_complete(context, event)
            _apply_statuses(state, images_from_event(event))
            return self._attempt_rounds(context, state, meter)

    def _final(self, context: Context, state: dict[str, Any]) -> Any:
        """The final image of each input, and every attempt (XCom ``bloom_attempts``)."""
        report = [
            {
                "request": request["key"],
                "final_image_ids": list(request["attempts"][-1]["image_ids"]),
                "attempts": [attempt_summary(a) for a in request["attempts"]],
            }
            for request in state["requests"]
        ]
        regenerated = [r for r in report if len(r["attempts"]) > 1]
        for item in regenerated:
            self.log.warning(
                "%s: %d attempt(s): %s",
                item["request"],
                len(item["attempts"]),
                "; ".join(
                    f"{a['model'] or BLOOM_DEFAULT_MODEL} -> {a['status']}"
                    + (f" ({a['failure_reason']})" if a["failure_reason"] else "")
                    for a in item["attempts"]
                ),
            )
        context["ti"].xcom_push(key=ATTEMPTS_XCOM_KEY, value=report)
        final_ids = [i for item in report for i in item["final_image_ids"]]
        with bloom_errors("Reading the final Bloom images"):
            found = self.records_by_id(final_ids, include_urls=self.include_urls or None)
        records = [found.get(i) or {"id": i, "status": None} for i in final_ids]
        return resolve_images(records, self.on_failure, self.log, include_urls=self.include_urls)


class PostProcessOperator(ImageWorkOperator):
    """One paid POST per input image (``POST /images/{id}/<action>``); optional wait for the results.

    Subclasses differ in data: ``operation``, ``action`` and ``arguments`` (the operation's own
    body fields besides ``brand_session_id``, set by their ``__init__``).
    """

    action: ClassVar[str]
    arguments: ClassVar[tuple[str, ...]] = ()
    template_fields: Sequence[str] = ("image_ids", "brand_session_id", "max_credits")
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        image_ids: Any,
        brand_session_id: str | None = None,
        check_sources: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_ids = image_ids
        self.brand_session_id = brand_session_id
        self.check_sources = check_sources
        if known_at_parse_time(image_ids):
            flatten_image_ids(image_ids, "image_ids")

    def request_body(self) -> dict[str, Any]:
        """The rendered arguments every input image's request carries (checked by the hook's ``prepare``)."""
        body = {name: rendered_argument(name, getattr(self, name)) for name in self.arguments}
        body["brand_session_id"] = self.brand_session_id
        return body

    def request_for(self, image_id: str) -> PreparedCall:
        """Build the checked request for one image (raise BloomInputError naming a bad argument)."""
        return self.hook.prepare(self.operation, path={"id": image_id}, body=self.request_body())

    def recovery_query(self, image_id: str, call: PreparedCall, created: Sequence[str]) -> ImageQuery:
        """What a lost request for ``image_id`` would have created, for
        :mod:`~airflow_provider_bloom.logic.reconcile` (see :func:`untraceable_query`); edits override it."""
        return untraceable_query(self.operation, self.action, call.json or {}, created)

    def _recover(
        self, image_id: str, call: PreparedCall, created: Sequence[str], lost: BloomError, attempt: Attempt
    ) -> dict[str, Any]:
        found = self.reconciler().images(self.recovery_query(image_id, call, created), lost, attempt)
        self.log.warning(
            "Recovered the result of the %s of image %s whose answer was lost: %s (created %s)",
            self.action,
            image_id,
            found.ids[0],
            found.records[0].get("createdAt"),
        )
        return {"id": found.ids[0], "status": ImageStatus.PENDING.value, "recovered": True}

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        """Why this (completed) source cannot take the operation, or None."""
        if record.get("actionType") == _VECTOR_ACTION:
            return f"is an SVG (a vectorize result); Bloom cannot {self.action} it"
        return None

    # -- the run ----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        meter = self.credit_meter()
        with self.spending(context, meter):
            with bloom_errors(f"Bloom {self.action}"):
                ids = flatten_image_ids(self.image_ids, "image_ids")
                calls = [(image_id, self.request_for(image_id)) for image_id in ids]
                self._source_sizes: dict[str, str] = {}
                if self.check_sources:
                    self._check_sources(ids)
            new_ids = self._post_all(context, calls, meter)
            record_provenance(self, context, derived_records(self, context, calls, new_ids))
            self.log.info(
                "Bloom accepted %d %s request(s); new image ids: %s", len(new_ids), self.action, new_ids
            )
            if self.refusal.regenerates:
                requests = [
                    {
                        "key": image_id,
                        "attempts": [{"model": getattr(self, "model", None), "image_ids": [new]}],
                    }
                    for (image_id, _), new in zip(calls, new_ids, strict=True)
                ]
                return self.start_attempts(context, requests, meter)
            return self.finish(context, new_ids)

    def _check_sources(self, ids: list[str]) -> None:
        """Free GETs before any paid POST: every source exists, is completed and fits the operation."""
        records = self.records_by_id(ids)
        problems = source_problems(ids, records, self.action, self.source_problem)
        if problems:
            raise BloomInputError("image_ids", "; ".join(problems) + ". Nothing was sent to Bloom.")
        self._source_sizes = {i: s for i, r in records.items() if (s := size_of(r)) is not None}

    def _post_all(
        self, context: Context, calls: list[tuple[str, PreparedCall]], meter: CreditMeter | None = None
    ) -> list[str]:
        ledger = self.paid_ledger(context, meter) if meter is not None else self.ledger(context)
        sizes = getattr(self, "_source_sizes", {})
        created: list[str] = []
        for image_id, call in calls:
            with paid_step(f"Bloom {self.action} of image {image_id}", created, self.log):
                answer = ledger.pay(
                    call,
                    functools.partial(self.paced, functools.partial(self.hook.send, call)),
                    recover=functools.partial(self._recover, image_id, call, list(created)),
                    valid=has_id,
                    source_size=sizes.get(image_id),
                    what=f"{self.action} of image {image_id}",
                )
            created.append(str(answer["id"]))
        return created


def size_of(record: Mapping[str, Any]) -> str | None:
    """The size class of an image record (``4K`` when its long side passes 2048 px), None if unknown."""
    width, height = record.get("width"), record.get("height")
    if not isinstance(width, int) or not isinstance(height, int) or not width or not height:
        return None
    return "4K" if max(width, height) > 2048 else "2K"


def _own_xcom(context: Context, key: str) -> Any:
    """What this task instance pushed to ``key`` before it deferred (None if nothing)."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    if isinstance(map_index, int) and map_index >= 0:
        return ti.xcom_pull(task_ids=ti.task_id, key=key, map_indexes=map_index)
    return ti.xcom_pull(task_ids=ti.task_id, key=key)


def _last_ids(state: Mapping[str, Any]) -> list[str]:
    return [i for r in state["requests"] for i in r["attempts"][-1]["image_ids"]]


def _apply_statuses(state: dict[str, Any], records: Iterable[Mapping[str, Any]]) -> None:
    """Note how the images of each request's last attempt ended (only once all of them have)."""
    by_id = {str(r.get("id")): r for r in records if r.get("id")}
    for request in state["requests"]:
        last = request["attempts"][-1]
        if last.get("statuses"):
            continue
        found = [by_id.get(i) for i in last["image_ids"]]
        if all(r is not None and ImageStatus.is_terminal(r.get("status")) for r in found):
            last["statuses"] = [[r.get("status"), r.get("failureReason")] for r in found if r is not None]
