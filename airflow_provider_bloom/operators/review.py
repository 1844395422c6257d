"""Human review of Bloom images on Airflow's human-in-the-loop (HITL) tasks.

:class:`BloomImageReviewOperator` is the standard provider's ``HITLOperator`` with a body built from
Bloom's records: one thumbnail per image (Bloom's ``imageUrl`` short link, which the reviewer's
browser loads; it carries no key), its prompt, the manifest's own columns (channel, sku...), size and
status. The reviewer answers in Airflow's UI (Browse → Required Actions) or through Airflow's REST API
(``PATCH .../hitlDetails``); the task returns the decisions::

    {"approved": [ids], "rejected": [{"id", "reason"}], "edits": [{"id", "instruction"}],
     "responded_by": name | None, "responded_at": iso, "timed_out": bool, "round": n, ...}

Given a batch manifest, it also writes a reviewed manifest beside it, where every reviewed record
gets a ``review`` field (see :func:`~airflow_provider_bloom.logic.review.answers.review_field`), and its
output is a batch summary, so that a batch operator (e.g. :class:`BloomReviewEditBatchOperator`, which
edits the images the reviewer asked to change with the reviewer's words) or the download operator can
take it as input.

Large batches are reviewed page by page: ``page_size`` images per review (default 25), and one
mapped review per page (:func:`review_pages`, then :func:`merge_reviews`).

What a review decides (its pages, its body, what an answer means) is in
:mod:`airflow_provider_bloom.logic.review`, free of I/O and of Airflow; this module asks, waits, and
reads and writes the manifests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param
from airflow.sdk.definitions.param import ParamsDict

from airflow_provider_bloom.exceptions import BloomInputError, BloomReviewAnswerError
from airflow_provider_bloom.logic.batch.manifest import summary, to_jsonl
from airflow_provider_bloom.logic.records import flatten_image_ids
from airflow_provider_bloom.logic.review.answers import (
    APPROVE_ALL,
    OPTIONS,
    REJECT_ALL,
    apply_reviews,
    decide,
    decision_counts,
    review_result,
)
from airflow_provider_bloom.logic.review.body import body_rows, render_body
from airflow_provider_bloom.logic.review.paging import (
    DEFAULT_PAGE_SIZE,
    check_page_size,
    given_items,
    next_round,
    page_count,
    page_number,
    page_of,
    pending_items,
)
from airflow_provider_bloom.operators._image_work import checked_argument
from airflow_provider_bloom.operators.batch import BloomEditBatchOperator, load_manifest
from airflow_provider_bloom.tasks.base import (
    DEFAULT_CONN_ID,
    BloomBaseOperator,
    bloom_errors,
    known_at_parse_time,
    literal_from_template,
)
from airflow_provider_bloom.tasks.storage import storage_path

if TYPE_CHECKING:
    from airflow.sdk import Context


ON_TIMEOUT_CHOICES = ("fail", "approve_all", "reject_all")
ITEMS_XCOM_KEY = "bloom_review_items"


# ------------------------------------------------------------------------- the manifest, in tasks
def review_pages(images: Any, page_size: int = DEFAULT_PAGE_SIZE) -> list[int]:
    """The page numbers (1, 2, ...) of a review of ``images`` (ids, records, a manifest or a batch
    summary), for ``BloomImageReviewOperator.partial(...).expand(page=...)``. Run it in a task::

        pages = task(review_pages)(generate.output, page_size=25)
    """
    check_page_size(page_size)
    manifest = _manifest_records(images)
    total = len(pending_items(manifest)) if manifest is not None else len(flatten_image_ids(images, "images"))
    return list(range(1, page_count(total, page_size) + 1))


def _manifest_records(value: Any) -> list[dict[str, Any]] | None:
    """:func:`~.batch.load_manifest` outside a task (no DAG folder for relative paths)."""
    return load_manifest(value, {}, "images")  # type: ignore[arg-type]


def reviewed_path(manifest: Any, round_: int) -> Any:
    """``<manifest>.review<round>.jsonl`` beside the manifest."""
    path = storage_path(manifest)
    name = PurePosixPath(path.name)
    stem = name.stem if name.suffix in (".jsonl", ".ndjson") else name.name
    return path.parent / f"{stem}.review{round_}.jsonl"


def merge_reviews(
    images: Any, reviews: Iterable[Mapping[str, Any]], output_path: Any = None
) -> dict[str, Any]:
    """Write the reviewed manifest of a review done page by page (mapped reviews) and return its summary.

    ``images``: the batch summary or manifest location the reviews were given; ``reviews``: the
    mapped reviews' outputs. Run it in a task after the reviews (see docs/howto/review.md)."""
    location = images["manifest"] if isinstance(images, Mapping) and "manifest" in images else images
    reviews = [r for r in reviews if r]
    records = _manifest_records(location)
    if records is None:
        raise BloomInputError("images", "merge_reviews needs a batch manifest (a summary or its location)")
    round_ = max([int(r.get("round") or 1) for r in reviews] or [next_round(records)])
    out = storage_path(output_path) if output_path else reviewed_path(location, round_)
    return write_reviewed(out, apply_reviews(records, reviews), reviews)


def write_reviewed(
    path: Any, records: list[dict[str, Any]], reviews: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_jsonl(records), encoding="utf-8")
    return {
        **summary(str(path), records, "review", credits=0),
        "decisions": decision_counts(records),
        "manifest_path": str(path),
    }


def approved_records(images: Any) -> list[dict[str, Any]]:
    """The records of a reviewed manifest (a summary or its location) whose review approved them: the
    input of the download operator when only approved images are to be published."""
    records = _manifest_records(images)
    if records is None:
        raise BloomInputError("images", "approved_records needs a reviewed batch manifest")
    return [
        r
        for r in records
        if isinstance(r.get("review"), Mapping) and r["review"].get("decision") == "approved"
    ]


# ---------------------------------------------------------------------------------------- operator
def _timeout(value: Any) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise BloomInputError("response_timeout", f"must be a timedelta or seconds; got {value!r}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise BloomInputError("response_timeout", f"must be > 0 seconds; got {value!r}")
    return timedelta(seconds=seconds)


def form_params(given: Any) -> ParamsDict:
    """The review's form: ``reject`` and ``edit`` text fields, plus the task's own params if any.

    The DAG's params (which Airflow hands every task) are left out: they are not questions for the
    reviewer (the standard provider filters them too, from Airflow 3.1.3)."""
    fields = {
        "reject": Param(
            "",
            type=["string", "null"],
            title="Reject",
            description="One line per image to reject: '<#>: <reason>' (the # or id shown above).",
            format="multiline",
        ),
        "edit": Param(
            "",
            type=["string", "null"],
            title="Edit",
            description="One line per image to edit: '<#>: <what to change>' (the edit prompt).",
            format="multiline",
        ),
    }
    for param in fields.values():
        param.source = "task"
    merged = ParamsDict()
    if given:
        given = given if isinstance(given, ParamsDict) else ParamsDict(given)
        for key in given:
            param = given.get_param(key)
            # Before Airflow 3.1.3 a Param does not say where it came from: keep only the review's own.
            if hasattr(param, "source") and param.source != "dag" and key not in fields:
                merged[key] = param
    for key, param in fields.items():
        merged[key] = param
    return merged


class BloomImageReviewOperator(BloomBaseOperator, HITLOperator):
    """Ask a person to review Bloom images in Airflow's UI (a Required Action) and return the decisions.

    The body shows a thumbnail per image (Bloom's ``imageUrl`` short link, loaded by the reviewer's
    browser, no key), its prompt, the manifest's columns, size and status. The reviewer picks
    ``"Approve all"``, ``"Reject all"`` or ``"Submit per-image decisions"``; with the last, the form's
    ``reject`` field lists the images to reject (``"<#>: <reason>"``, one per line) and its ``edit``
    field the images to edit (``"<#>: <instruction>"``); every other image is approved.

    :param images: image ids, image records (dicts with ``id``), a batch task's output, a manifest's
        location (JSON Lines) or its records. With a manifest, the images waiting for review are
        the completed images of the records without a ``review`` field. Templated.
    :param subject: the Required Action's headline. Templated.
    :param body: Markdown shown above the images (optional). Templated.
    :param page_size: thumbnails per review (default 25, at most 100).
    :param page: which page to review (1-based); map over :func:`review_pages` for large batches.
        ``None`` (default): the first page, and the task fails when there is more than one page, so
        that nothing goes unreviewed. Templated.
    :param response_timeout: how long the review waits (a ``timedelta`` or seconds; default: forever).
    :param on_timeout: what an unanswered review ends as: ``"fail"`` (default), ``"approve_all"`` or
        ``"reject_all"``.
    :param notifiers: Airflow notifiers (``BaseNotifier``, e.g. Slack) called when the review starts.
    :param assigned_users: who may answer (``{"id", "name"}`` or a list of them).
    :param output_path: with a manifest: where the reviewed manifest goes (default:
        ``<manifest>.review<round>.jsonl`` beside it). Templated.
    :param auto_approve: approve every image without asking anyone (e.g. ``"{{ not params.review }}"``
        for runs with no person present); the result says ``auto_approved``. Templated.
    :param bloom_conn_id: the Bloom connection (to read the images' records).

    :return: ``{"approved": [ids], "rejected": [{"id", "reason"}], "edits": [{"id", "instruction"}],
        "responded_by", "responded_at", "timed_out", "auto_approved", "round", "page", "pages"}``; with a
        manifest, also ``manifest_path`` and the batch summary keys (``manifest``, ``counts``...) of the
        reviewed manifest, so a batch operator takes it as input.
    """

    template_fields: Sequence[str] = (
        *HITLOperator.template_fields,
        "images",
        "page",
        "output_path",
        "auto_approve",
    )
    ui_color = "#e8d9f7"

    def __init__(
        self,
        *,
        images: Any,
        subject: str = "Review Bloom images",
        body: str | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        page: int | str | None = None,
        response_timeout: timedelta | float | None = None,
        on_timeout: str = "fail",
        output_path: Any = None,
        auto_approve: bool | str = False,
        bloom_conn_id: str = DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        for fixed in ("options", "defaults", "multiple"):
            if fixed in kwargs:
                raise BloomInputError(fixed, "is set by BloomImageReviewOperator; it cannot be passed")
        if on_timeout not in ON_TIMEOUT_CHOICES:
            raise BloomInputError(
                "on_timeout", f"must be one of {list(ON_TIMEOUT_CHOICES)}; got {on_timeout!r}"
            )
        timeout = _timeout(response_timeout)
        if on_timeout != "fail" and timeout is None:
            raise BloomInputError("on_timeout", f"{on_timeout!r} needs a response_timeout")
        defaults = {"fail": None, "approve_all": [APPROVE_ALL], "reject_all": [REJECT_ALL]}[on_timeout]
        form = form_params(kwargs.pop("params", None))
        #: The form's fields. Airflow before 3.1.3 merges the DAG's params into every task's again
        #: (after __init__), and the standard provider would then show them in the form.
        self.form_fields = list(form)
        super().__init__(
            bloom_conn_id=bloom_conn_id,
            subject=subject,
            body=body,
            options=list(OPTIONS),
            defaults=defaults,
            multiple=False,
            params=form,
            response_timeout=timeout,
            **kwargs,
        )
        self.images = images
        self.page_size = check_page_size(page_size)
        self.page = page
        self.on_timeout = on_timeout
        self.output_path = output_path
        self.auto_approve = auto_approve
        if known_at_parse_time(page):
            self._page_number()

    @property
    def serialized_params(self) -> dict[str, dict[str, Any]]:
        """The form: the review's own fields only (never the DAG's params)."""
        fields = set(getattr(self, "form_fields", ()) or ())
        return {k: v for k, v in super().serialized_params.items() if not fields or k in fields}

    def validate_params_input(self, params_input: Mapping) -> None:
        """The answer's form values: only the review's fields, each checked by its Param."""
        fields = set(getattr(self, "form_fields", ()) or ())
        unknown = sorted(set(params_input) - fields) if fields else []
        if unknown:
            raise BloomReviewAnswerError(f"The answer has form fields the review does not have: {unknown}")
        for key, value in params_input.items():
            self.params[key] = value

    def _page_number(self) -> int | None:
        return page_number(self.page)

    # -- what is reviewed ---------------------------------------------------------------------
    def _input(self, context: Context) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]]]:
        """(manifest records or None, the items waiting for review: ``{"id", "record"?, "given"?}``)."""
        records = load_manifest(self.images, context, "images")
        if records is not None:
            return records, pending_items(records)
        return None, given_items(literal_from_template(self.images))

    def _page(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int, int]:
        return page_of(items, self._page_number(), self.page_size)

    def _round(self, records: list[dict[str, Any]] | None) -> int:
        return next_round(records) if records is not None else 1

    # -- execute: build the body, then HITL waits -------------------------------------------------
    def _auto(self) -> bool:
        value = self.auto_approve
        if isinstance(value, str):
            return value.strip().lower() in ("true", "1", "yes", "on")
        return bool(value)

    def execute(self, context: Context) -> Any:
        from airflow.sdk.timezone import utcnow

        records, items = self._input(context)
        round_ = self._round(records)
        if self._auto() or not items:
            if not items:
                self.log.info("No completed image waits for review: nothing to ask")
            number = self._page_number()
            chosen = self._page(items)[0] if items and number else items
            return self._finish(
                records,
                {"approved": [i["id"] for i in chosen], "rejected": [], "edits": []},
                user=None,
                responded_at=utcnow(),
                timed_out=False,
                round_=round_,
                page=number or 1,
                pages=1 if number is None else page_count(len(items), self.page_size),
                auto=bool(items),
            )
        page_items, page, pages = self._page(items)
        with bloom_errors("Reading the images to review"):
            bloom = self.records_by_id([i["id"] for i in page_items])
        settings = self.hook.settings
        rows, missing = body_rows(page_items, bloom, records, settings.base_url, settings.secrets)
        if missing:
            raise BloomInputError("images", f"Bloom has no image {missing} (for this connection's key)")
        self.body = render_body(rows, self.body, page=page, pages=pages, round_=round_, total=len(items))
        if pages > 1 and "page" not in (self.subject or "").lower():
            self.subject = f"{self.subject} (page {page} of {pages})"
        context["ti"].xcom_push(
            key=ITEMS_XCOM_KEY,
            value={"ids": [r["id"] for r in rows], "page": page, "pages": pages, "round": round_},
        )
        try:
            link = self.generate_link_to_ui_from_context(context=context)
        except ValueError:
            ti = context["ti"]
            link = (
                f"/dags/{ti.dag_id}/runs/{ti.run_id}/tasks/{ti.task_id}/required_actions"
                f"?map_index={ti.map_index}"
            )
        self.log.info(
            "Review of %d image(s) (page %d of %d, round %d) is open: answer it at %s (Browse > Required "
            "Actions), or PATCH /api/v2/dags/%s/dagRuns/%s/taskInstances/%s/%s/hitlDetails",
            len(rows),
            page,
            pages,
            round_,
            link,
            context["ti"].dag_id,
            context["ti"].run_id,
            context["ti"].task_id,
            context["ti"].map_index,
        )
        if self.response_timeout:
            self.log.info(
                "Unanswered after %s, the review ends as %r", self.response_timeout, self.on_timeout
            )
        return super().execute(context)

    # -- resume: the answer -------------------------------------------------------------------
    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if "error" in event and event.get("error_type") == "timeout":
            self.log.error("The review was not answered within %s (on_timeout='fail')", self.response_timeout)
        answer = super().execute_complete(context, event)
        saved = context["ti"].xcom_pull(
            task_ids=context["ti"].task_id, key=ITEMS_XCOM_KEY, map_indexes=context["ti"].map_index
        )
        records, items = self._input(context)
        if isinstance(saved, Mapping) and saved.get("ids"):
            known = {i["id"]: i for i in items}
            page_items = [known.get(i, {"id": i}) for i in saved["ids"]]
            page, pages, round_ = saved.get("page", 1), saved.get("pages", 1), saved.get("round", 1)
        else:
            page_items, page, pages = self._page(items)
            round_ = self._round(records)
        user = answer.get("responded_by_user")
        timed_out = bool(answer.get("timedout")) or user is None
        decisions = decide(
            answer["chosen_options"], answer.get("params_input") or {}, page_items, timed_out=timed_out
        )
        return self._finish(
            records,
            decisions,
            user=user if isinstance(user, Mapping) else None,
            responded_at=answer.get("responded_at"),
            timed_out=timed_out,
            round_=round_,
            page=page,
            pages=pages,
        )

    def _location(self) -> Any:
        """Where the input manifest is (None for records passed as a list)."""
        value = literal_from_template(self.images)
        if isinstance(value, Mapping) and isinstance(value.get("manifest"), str):
            return value["manifest"]
        if isinstance(value, str) or hasattr(value, "read_text"):
            return value
        return None

    def _finish(
        self,
        records: list[dict[str, Any]] | None,
        decisions: Mapping[str, Any],
        *,
        user: Mapping[str, Any] | None,
        responded_at: Any,
        timed_out: bool,
        round_: int,
        page: int,
        pages: int,
        auto: bool = False,
    ) -> dict[str, Any]:
        """The task's result; with a manifest (one page), the reviewed manifest written beside it."""
        result = review_result(
            decisions,
            user=user,
            responded_at=responded_at,
            timed_out=timed_out,
            auto=auto,
            round_=round_,
            page=page,
            pages=pages,
        )
        self.log.info(
            "Review %s%s: %d approved, %d rejected, %d to edit",
            "auto-approved (no person asked)"
            if auto
            else f"answered by {result['responded_by'] or 'nobody'}",
            " (timed out: on_timeout applied)" if timed_out else "",
            len(result["approved"]),
            len(result["rejected"]),
            len(result["edits"]),
        )
        if records is None:
            return result
        if pages > 1:
            self.log.info("Page %d of %d: merge the pages' decisions with merge_reviews", page, pages)
            return result
        location = self._location()
        if self.output_path:
            path = storage_path(self.output_path)
        elif location is not None:
            path = reviewed_path(location, round_)
        else:
            self.log.warning(
                "Manifest records were given as a list: set output_path to write the reviewed manifest"
            )
            return result
        result.update(write_reviewed(path, apply_reviews(records, [result]), [result]))
        self.log.info("Reviewed manifest: %s", path)
        return result


class BloomReviewEditBatchOperator(BloomEditBatchOperator):
    """Edit the images a reviewer sent to edit, each with the reviewer's own words as the prompt.

    :param images: a reviewed manifest (a :class:`BloomImageReviewOperator`'s output, or its
        location): its records whose ``review.decision`` is ``"edit_requested"`` are edited with
        ``review.instruction``; the others are carried through unchanged. Templated.

    Each edited record moves its ``review`` to ``review_history`` (so the next review round shows the
    edited image), and names its source (``source_image_id``, ``lineage``) like every batch step.
    Everything else (the journal, never paying twice, the manifest) is :class:`BloomEditBatchOperator`'s.
    """

    def __init__(self, *, image_size: str | None = None, model: str | None = None, **kwargs: Any) -> None:
        super().__init__(
            prompt="(each image's review instruction)", image_size=image_size, model=model, **kwargs
        )

    def check_arguments(self) -> None:
        for name in ("image_size", "model"):
            if getattr(self, name, None) is not None:
                checked_argument(self.operation, name, getattr(self, name))

    def selected(self, record: Mapping[str, Any]) -> bool:
        review = record.get("review")
        return (
            isinstance(review, Mapping)
            and review.get("decision") == "edit_requested"
            and super().selected(record)
        )

    def sources(self, context: Context) -> list[tuple[dict[str, Any], str]]:
        if load_manifest(self.images, context, "images") is None:
            raise BloomInputError(
                "images", "must be a reviewed batch manifest (a review task's output or its location)"
            )
        out = []
        for base, image_id in super().sources(context):
            base = dict(base)
            review = base.pop("review", None)
            base["review_history"] = [*(base.get("review_history") or []), review]
            base["_instruction"] = (review or {}).get("instruction")
            out.append((base, image_id))
        return out

    def request_body(self, base: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The edit of one image: the batch's model and size, the reviewer's words as the prompt."""
        instruction = base.pop("_instruction", None)
        if not instruction:
            image_id = base.get("source_image_id")
            raise BloomInputError("images", f"image {image_id} was sent to edit without an instruction")
        return {**body, "prompt": instruction}


__all__ = [
    "BloomImageReviewOperator",
    "BloomReviewEditBatchOperator",
    "approved_records",
    "merge_reviews",
    "review_pages",
]
