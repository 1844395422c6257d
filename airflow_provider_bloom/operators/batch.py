"""Batch operators: thousands of Bloom images in one task, at the key's rate, resumable, with a manifest.

* :class:`BloomGenerateBatchOperator`: one generation per row of a list, an upstream task's output,
  or a CSV / JSON Lines file;
* :class:`BloomResizeBatchOperator`, :class:`BloomRemoveBackgroundBatchOperator`,
  :class:`BloomVectorizeBatchOperator`, :class:`BloomEditBatchOperator`: one request per completed
  image of a batch manifest (or of a list of ids), each output record naming its source image.

Every request is checked against Bloom's spec before the first is sent; the task then submits at
the connection's ``requests_per_minute``, records each request in a durable journal (a killed or
retried task never pays twice), waits (``deferrable=True``: in the triggerer), writes a JSON Lines
manifest to ``output_path`` and returns a small summary: ``{"manifest", "operation", "records", "images",
"counts", "credits", "batch"}``. The next batch step, the download operator and your own tasks take
that summary (or the manifest's location) as input. The steps and the guarantees are in
:mod:`._batch`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.links import BloomManifestLink
from airflow_provider_bloom.logic.batch.manifest import (
    completed_images,
    derived_base,
    from_jsonl,
    is_summary,
    source_image_size,
)
from airflow_provider_bloom.logic.batch.rows import GENERATE_FIELDS, check_rows, request_of, rows_from_text
from airflow_provider_bloom.logic.prices import credits_for
from airflow_provider_bloom.logic.reconcile import ImageQuery
from airflow_provider_bloom.logic.records import flatten_image_ids
from airflow_provider_bloom.operators._batch import BloomBatchOperator
from airflow_provider_bloom.operators._batch_run import Job
from airflow_provider_bloom.operators._image_work import (
    check_known_arguments,
    checked_argument,
    rendered_argument,
    source_problems,
    untraceable_query,
)
from airflow_provider_bloom.tasks.base import known_at_parse_time, literal_from_template
from airflow_provider_bloom.tasks.storage import storage_path

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client.core import PreparedCall

GENERATE = "images.generate"
_FILE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")


def _dag_folder(context: Context) -> Path | None:
    fileloc = getattr(context.get("dag"), "fileloc", None)
    return Path(fileloc).resolve().parent if fileloc else None


def read_location(location: Any, context: Context) -> tuple[str, str]:
    """The text and name of a file given as a path, a URL or an ``ObjectStoragePath``.

    A relative path is read from the DAG file's folder (where an example keeps its CSV)."""
    text = str(location)
    if "://" not in text and not Path(text).expanduser().is_absolute():
        folder = _dag_folder(context)
        if folder is not None and (folder / text).exists():
            location = folder / text
    path = storage_path(location)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise BloomInputError("rows", f"{location} does not exist") from None


def load_rows(value: Any, context: Context, field: str = "rows") -> list[dict[str, Any]]:
    """Rows from a list of dicts, an upstream task's output, or a CSV / JSON Lines file's location."""
    value = literal_from_template(value)
    if value is None:
        raise BloomInputError(
            field, "is required: a list of rows, or the location of a CSV or JSON Lines file"
        )
    if isinstance(value, str) or hasattr(value, "read_text"):
        if (
            isinstance(value, str)
            and not value.strip().lower().endswith(_FILE_SUFFIXES)
            and "://" not in value
        ):
            raise BloomInputError(
                field, f"a file must end in .csv, .jsonl, .ndjson or .json; got {value!r:.120}"
            )
        text, name = read_location(value, context)
        return rows_from_text(text, name)
    if isinstance(value, Mapping):
        raise BloomInputError(field, "must be a list of rows (objects), not one object")
    try:
        return list(value)
    except TypeError:
        raise BloomInputError(
            field, f"must be a list of rows or a file; got {type(value).__name__}"
        ) from None


def load_manifest(value: Any, context: Context, field: str) -> list[dict[str, Any]] | None:
    """The records of a batch manifest given as a task's summary or its location; None for other input."""
    value = literal_from_template(value)
    if is_summary(value):
        value = value["manifest"]
    if (
        isinstance(value, str)
        and value.strip().lower().endswith((".jsonl", ".ndjson"))
        or hasattr(value, "read_text")
    ):
        text, _ = read_location(value, context)
        return from_jsonl(text)
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(r, Mapping) and "image_ids" in r for r in value)
    ):
        return [dict(r) for r in value]
    return None


class BloomGenerateBatchOperator(BloomBatchOperator):
    """Generate one Bloom image request per row, thousands in one task (``POST /images/generations``).

    :param rows: a list of dicts, an upstream task's output, or the location of a CSV or JSON Lines
        file (a path, a URL, an ``ObjectStoragePath``; a relative path is read from the DAG's folder).
        Each row holds the generate operator's arguments (``prompt``, ``aspect_ratio``, ``image_size``,
        ``model``, ``variant_count``, ``reference_image_ids``, ``brand_session_id``); every other column
        (``sku``, ``channel``...) is carried to the manifest. Templated.
    :param defaults: values for the rows that leave a field empty (e.g. ``{"model": "fast"}``). Templated.

    Every row is checked against Bloom's spec before anything is sent: bad rows are reported
    together, by row number and field. See
    :class:`~airflow_provider_bloom.operators._batch.BloomBatchOperator` for ``output_path``,
    the credit guard and the wait arguments, and the connection's
    ``requests_per_minute`` for the pace.

    :return: ``{"manifest", "operation", "records", "images", "counts", "credits", "batch"}``.
    """

    operation = GENERATE
    action = "generation"
    template_fields: Sequence[str] = (*BloomBatchOperator.template_fields, "rows", "defaults")
    operator_extra_links = (BloomManifestLink(),)

    def __init__(self, *, rows: Any, defaults: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows = rows
        self.defaults = defaults
        if defaults is not None and known_at_parse_time(list(defaults.values())):
            unknown = sorted(set(defaults) - set(GENERATE_FIELDS))
            if unknown:
                raise BloomInputError("defaults", f"unknown field(s) {unknown}; use {list(GENERATE_FIELDS)}")
            for name, value in request_of(defaults, GENERATE_FIELDS).items():
                checked_argument(GENERATE, name, value)

    def plan(self, context: Context) -> list[Job]:
        rows = load_rows(self.rows, context)
        defaults = dict(self.defaults or {})
        return check_rows(rows, functools.partial(self._job, defaults))

    def _job(self, defaults: Mapping[str, Any], index: int, row: Mapping[str, Any]) -> Job:
        request = {
            name: rendered_argument(name, value)
            for name, value in request_of(row, GENERATE_FIELDS, defaults).items()
        }
        if "prompt" not in request:
            raise BloomInputError("prompt", "is required (an empty cell is not a prompt)")
        call = self.hook.prepare(GENERATE, body=request)
        body = dict(call.json or {})
        query = functools.partial(_generation_query, body)
        credits = credits_for(GENERATE, body, prices=self.hook.settings.prices)
        return Job(index, call, {"row": index + 1, **row}, credits, query)


def _generation_query(body: Mapping[str, Any], exclude: frozenset[str]) -> ImageQuery:
    return ImageQuery(
        operation=GENERATE,
        action_type="generation",
        brand_session_id=str(body["brandSessionId"]),
        count=int(body.get("variantCount") or 1),
        prompt=str(body["prompt"]),
        aspect_ratio=body.get("aspectRatio"),
        exclude=exclude,
    )


class BloomBatchPostProcessOperator(BloomBatchOperator):
    """One paid request per completed image of a batch manifest or a list of ids (resize, cut out...).

    :param images: a batch task's summary (its output), a manifest's location, a list of manifest
        records, or image ids / image records. Templated.
    :param where: process only the manifest records whose fields match, e.g. ``{"channel": "story"}``
        (a list of values matches any of them). Templated.
    :param carry_through: copy the records this step does not process (not selected, or not
        completed) to its manifest unchanged, so that the last manifest of a chain has every row
        (default True).
    :param brand_session_id: the brand; defaults to the connection's ``brand_session_id``. Templated.

    Output records carry the source record's fields, plus ``source_image_id`` and ``lineage``.
    """

    arguments: ClassVar[tuple[str, ...]] = ()
    template_fields: Sequence[str] = (
        *BloomBatchOperator.template_fields,
        "images",
        "where",
        "brand_session_id",
    )
    operator_extra_links = (BloomManifestLink(),)

    def __init__(
        self,
        *,
        images: Any,
        where: Mapping[str, Any] | None = None,
        carry_through: bool = True,
        brand_session_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.where = where
        self.carry_through = carry_through
        self.brand_session_id = brand_session_id
        self._carried: list[dict[str, Any]] = []

    def check_arguments(self) -> None:
        check_known_arguments(self.operation, {name: getattr(self, name) for name in self.arguments})

    def selected(self, record: Mapping[str, Any]) -> bool:
        for name, wanted in (self.where or {}).items():
            options = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
            if record.get(name) not in options:
                return False
        return True

    def sources(self, context: Context) -> list[tuple[dict[str, Any], str]]:
        """(carried base, source image id) per image to process; fills the records carried through."""
        records = load_manifest(self.images, context, "images")
        self._carried = []
        if records is None:
            ids = flatten_image_ids(self.images, "images")
            self._check_ids(ids)
            return [({"source_image_id": image_id, "lineage": []}, image_id) for image_id in ids]
        out: list[tuple[dict[str, Any], str]] = []
        for record in records:
            done = completed_images(record) if self.selected(record) else []
            if not done:
                if self.carry_through:
                    self._carried.append(record)
                continue
            out.extend((derived_base(record, image_id), image_id) for image_id in done)
        return out

    def _check_ids(self, ids: list[str]) -> None:
        """Free GETs before any paid POST: every source exists, is completed and fits the operation."""
        problems = source_problems(ids, self.records_by_id(ids), self.action, self.source_problem)
        if problems:
            raise BloomInputError("images", "; ".join(problems[:50]) + ". Nothing was sent to Bloom.")

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        """Why a source cannot take the operation (None: it can)."""
        if record.get("actionType") == "vectorize" or record.get("operation") == "images.vectorize":
            return f"is an SVG (a vectorize result); Bloom cannot {self.action} it"
        return None

    def body(self) -> dict[str, Any]:
        body = {name: checked_argument(self.operation, name, getattr(self, name)) for name in self.arguments}
        body["brand_session_id"] = self.brand_session_id
        return body

    def request_body(self, base: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """The request for one source (``base``: its carried record); the same ``body`` for all here."""
        return body

    def plan(self, context: Context) -> list[Job]:
        body = self.body()
        sources = self.sources(context)
        if not sources:
            self.log.warning("No completed image to %s (everything is carried through)", self.action)
            return []

        def job(index: int, item: tuple[dict[str, Any], str]) -> Job:
            base, image_id = item
            if problem := self.source_problem(base):
                raise BloomInputError("images", f"image {image_id} {problem}")
            call = self.hook.prepare(
                self.operation, path={"id": image_id}, body=self.request_body(base, body)
            )
            size = source_image_size(base)
            credits = credits_for(self.operation, call.json or {}, size, self.hook.settings.prices)
            return Job(index, call, base, credits, functools.partial(self.recovery_query, base, call))

        return check_rows(sources, job, source="images")

    def carried(self, context: Context) -> list[dict[str, Any]]:
        return self._carried

    def recovery_query(
        self, base: Mapping[str, Any], call: PreparedCall, exclude: frozenset[str]
    ) -> ImageQuery:
        """What a lost request made: never certain for resize, remove-background and vectorize
        (see :func:`~._image_work.untraceable_query`); it is reported, never sent again."""
        return untraceable_query(self.operation, self.action, call.json or {}, exclude)


class BloomResizeBatchOperator(BloomBatchPostProcessOperator):
    """Re-frame every completed image of a batch to another aspect ratio (``POST /images/{id}/resize``).

    Costs like a generation of the source's size (the manifest's ``image_size``; 4K when unknown, for
    the credit guard).

    :param target_aspect_ratio: one of Bloom's ratios (``"9:16"`` for stories). Templated.
    """

    operation = "images.resize"
    action = "resize"
    arguments = ("target_aspect_ratio",)
    template_fields: Sequence[str] = (*BloomBatchPostProcessOperator.template_fields, "target_aspect_ratio")

    def __init__(self, *, target_aspect_ratio: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_aspect_ratio = target_aspect_ratio
        self.check_arguments()

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        resized = any(step.get("operation") == self.operation for step in record.get("lineage") or [])
        ratio = record.get("aspectRatio") or (None if resized else record.get("aspect_ratio"))
        if ratio == self.target_aspect_ratio:
            return f"is already {ratio}; Bloom refuses a resize to the same ratio"
        return super().source_problem(record)


class BloomRemoveBackgroundBatchOperator(BloomBatchPostProcessOperator):
    """Cut out the subject of every completed image of a batch (``POST /images/{id}/remove-background``).

    Bloom publishes no price: 1 credit per image is assumed (for the credit guard and the manifest).
    """

    operation = "images.removeBackground"
    action = "remove-background"


class BloomVectorizeBatchOperator(BloomBatchPostProcessOperator):
    """Turn every completed image of a batch into an SVG (``POST /images/{id}/vectorize``).

    Bloom publishes no price: 1 credit per image is assumed (for the credit guard and the manifest).
    """

    operation = "images.vectorize"
    action = "vectorize"


class BloomEditBatchOperator(BloomBatchPostProcessOperator):
    """Edit every completed image of a batch with one prompt (``POST /images/{id}/edit``).

    :param prompt: what to change (1-2000 characters). Templated.
    :param image_size: ``"2K"`` (1 credit) or ``"4K"`` (2 credits).
    :param model: ``"fast"``, ``"standard"`` or ``"pro"``.
    """

    operation = "images.edit"
    action = "edit"
    arguments = ("prompt", "image_size", "model")
    template_fields: Sequence[str] = (*BloomBatchPostProcessOperator.template_fields, "prompt")

    def __init__(
        self, *, prompt: str, image_size: str | None = None, model: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image_size = image_size
        self.model = model
        self.check_arguments()

    def recovery_query(
        self, base: Mapping[str, Any], call: PreparedCall, exclude: frozenset[str]
    ) -> ImageQuery:
        """An edit result carries its prompt and keeps its source's ratio (the manifest's, when known)."""
        body = call.json or {}
        return ImageQuery(
            operation=self.operation,
            action_type=self.action,
            brand_session_id=body.get("brandSessionId"),
            prompt=body.get("prompt"),
            aspect_ratio=base.get("aspect_ratio") if isinstance(base.get("aspect_ratio"), str) else None,
            exclude=exclude,
        )


__all__ = [
    "BloomBatchPostProcessOperator",
    "BloomEditBatchOperator",
    "BloomGenerateBatchOperator",
    "BloomRemoveBackgroundBatchOperator",
    "BloomResizeBatchOperator",
    "BloomVectorizeBatchOperator",
    "load_manifest",
    "load_rows",
]
