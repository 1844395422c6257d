"""The machinery of the operators that start paid image work (:mod:`.images`): arguments checked
against the spec (when the DAG is parsed, if known by then), the wait arguments, and one paid POST
per input image for the post-processing operators.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_bloom._spec import MAX_WAIT_SECONDS, check_value, get_operation, to_camel
from airflow_provider_bloom.exceptions import BloomError, BloomInputError
from airflow_provider_bloom.lineage import derived_records, record_provenance
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.operators._base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    BloomBaseOperator,
    ImageWaitMixin,
    bloom_errors,
    check_wait_options,
    default_deferrable,
    known_at_parse_time,
    literal_from_template,
    paid_step,
)
from airflow_provider_bloom.operators._ledger import has_id
from airflow_provider_bloom.reconcile import Attempt, ImageQuery
from airflow_provider_bloom.records import ImageStatus, flatten_image_ids

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client import BloomClient, PreparedCall

#: Post-processing works on raster images; vectorize produces SVGs that nothing else accepts.
_VECTOR_ACTION = "vectorize"


def checked_argument(operation: str, name: str, value: Any) -> Any:
    """One argument of ``operation``, normalised and checked against the spec (BloomInputError names it).

    A rendered template is text: ``variant_count`` digits become a number, a list of reference ids
    written as text is read back as the list.
    """
    if name == "variant_count" and isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if name == "reference_image_ids":
        value = literal_from_template(value)
        value = None if value in (None, [], ()) else flatten_image_ids(value, name)
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


class ImageWorkOperator(ImageWaitMixin, BloomBaseOperator):
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        """OpenLineage: the source images in, the new images out, their provenance (see :mod:`...lineage`)."""
        from airflow_provider_bloom.lineage import image_work_lineage

        return image_work_lineage(self, task_instance)

    def finish(self, context: Context, ids: list[str]) -> Any:
        """Link the new images; return their ids, or (``wait_for_completion``) their records."""
        BloomImageLink.persist_all(context, self.hook.settings.base_url, ids)
        if not self.wait_for_completion:
            return ids
        return self.wait_for_images(context, ids)


class PostProcessOperator(ImageWorkOperator):
    """One paid POST per input image (``POST /images/{id}/<action>``); optional wait for the results.

    Subclasses differ in data: ``operation``, ``action`` and ``arguments`` (the operation's own
    body fields besides ``brand_session_id``, set by their ``__init__``).
    """

    action: ClassVar[str]
    arguments: ClassVar[tuple[str, ...]] = ()
    template_fields: Sequence[str] = ("image_ids", "brand_session_id")
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

    def prepare(self, client: BloomClient, image_id: str) -> PreparedCall:
        """The checked request for one image (raises BloomInputError naming a bad argument)."""
        body = {name: checked_argument(self.operation, name, getattr(self, name)) for name in self.arguments}
        body["brand_session_id"] = self.brand_session_id
        return client.prepare(self.operation, path={"id": image_id}, body=body)

    def recovery_query(self, image_id: str, call: PreparedCall, created: Sequence[str]) -> ImageQuery:
        """What a lost request for ``image_id`` would have created, for :mod:`..reconcile`
        (see :func:`untraceable_query`). Edits override this."""
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
        with bloom_errors(f"Bloom {self.action}"):
            ids = flatten_image_ids(self.image_ids, "image_ids")
            calls = [(image_id, self.prepare(self.hook.client, image_id)) for image_id in ids]
            if self.check_sources:
                self._check_sources(ids)
        new_ids = self._post_all(context, calls)
        record_provenance(self, context, derived_records(self, context, calls, new_ids))
        self.log.info(
            "Bloom accepted %d %s request(s); new image ids: %s", len(new_ids), self.action, new_ids
        )
        return self.finish(context, new_ids)

    def _check_sources(self, ids: list[str]) -> None:
        """Free GETs before any paid POST: every source exists, is completed and fits the operation."""
        problems = source_problems(ids, self.records_by_id(ids), self.action, self.source_problem)
        if problems:
            raise BloomInputError("image_ids", "; ".join(problems) + ". Nothing was sent to Bloom.")

    def _post_all(self, context: Context, calls: list[tuple[str, PreparedCall]]) -> list[str]:
        ledger, client = self.ledger(context), self.hook.client
        created: list[str] = []
        for image_id, call in calls:
            with paid_step(f"Bloom {self.action} of image {image_id}", created, self.log):
                answer = ledger.pay(
                    call,
                    functools.partial(self.paced, functools.partial(client.execute, call)),
                    recover=functools.partial(self._recover, image_id, call, list(created)),
                    valid=has_id,
                )
            created.append(str(answer["id"]))
        return created
