"""Operators on existing Bloom images: edit, resize, remove background, vectorize, upload, search,
list and delete.

Users import them from :mod:`airflow_provider_bloom.operators.images` (which re-exports this module).

The four post-processing operators take one image id, a list of ids, or the image records a sensor
returns; they check every input before spending (ids, arguments against Bloom's spec, and that each
image is completed and can take the operation), then post one paid request per image, each through
:class:`~airflow_provider_bloom.operators._base.PaidRequestLedger` so a retried task never pays twice.
They return the new image ids (or, with ``wait_for_completion=True``, the finished image records).
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

from airflow_provider_bloom._images import flatten_image_ids, slim_record
from airflow_provider_bloom._spec import (
    MAX_UPLOAD_BYTES,
    MAX_WAIT_SECONDS,
    check_url,
    check_uuid,
    check_value,
    chunked,
    get_operation,
    to_camel,
)
from airflow_provider_bloom.client import (
    BloomClient,
    BloomOperations,
    FileInput,
    PreparedCall,
    allowed_mimes,
    sniff_image_type,
)
from airflow_provider_bloom.exceptions import BloomError, BloomInputError, BloomNotFoundError
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.operators._base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    BloomBaseOperator,
    ImageWaitMixin,
    PaidRequestLedger,
    bloom_errors,
)
from airflow_provider_bloom.reconcile import Attempt, ImageQuery

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

#: Post-processing works on raster images; vectorize produces SVGs that nothing else accepts.
_VECTOR_ACTION = "vectorize"


class _Preparer(BloomOperations[PreparedCall]):
    """Runs the spec checks of any operation and returns the prepared call without sending it."""

    def __init__(self, client: BloomClient) -> None:
        self.client = client

    def _call(self, operation_id: str, **kwargs: Any) -> PreparedCall:
        return self.client.prepare(operation_id, **kwargs)


def _literal(value: Any) -> bool:
    """A string known at parse time (no Jinja)."""
    return isinstance(value, str) and "{{" not in value and "{%" not in value


def _redact(source: str) -> str:
    """A URL without its query string (presigned URLs carry credentials there)."""
    parsed = urlparse(source)
    if parsed.scheme in {"http", "https"} and (parsed.query or parsed.password):
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    return source


def _paid_failure(exc: BloomError, what: str, created: Sequence[str], log: Any) -> None:
    """Raise ``exc`` as a task failure that names the image and what was already created."""
    done = (
        f" Already created for earlier inputs (kept, not charged again): {list(created)}." if created else ""
    )
    log.error("%s failed: %s.%s", what, exc, done)
    with bloom_errors(what + (f" (already created: {list(created)})" if created else "")):
        raise exc


# --------------------------------------------------------------------------- post-processing


class _PostProcessOperator(ImageWaitMixin, BloomBaseOperator):
    """One paid POST per input image; optional wait for the results."""

    operation: ClassVar[str]
    action: ClassVar[str]
    template_fields: Sequence[str] = ("image_ids", "brand_session_id")
    ui_color = "#f3e8ff"
    operator_extra_links = image_links()

    def __init__(
        self,
        *,
        image_ids: Any,
        brand_session_id: str | None = None,
        check_sources: bool = True,
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
        self.set_wait_options(
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            wait_timeout=wait_timeout,
            poll_timeout=poll_timeout,
            on_failure=on_failure,
            include_urls=include_urls,
            defer_after=defer_after,
            min_defer_seconds=min_defer_seconds,
        )
        self.image_ids = image_ids
        self.brand_session_id = brand_session_id
        self.check_sources = check_sources

    def check_literals(self, *names: str) -> None:
        """Check arguments already known when the DAG is parsed (templated ones are checked once rendered)."""
        body = get_operation(self.operation).body
        for name in names:
            value = getattr(self, name)
            if _literal(value):
                check_value(name, value, body[to_camel(name)])
        ids = self.image_ids
        if _literal(ids) or (isinstance(ids, (list, tuple)) and ids and all(_literal(i) for i in ids)):
            flatten_image_ids(ids, "image_ids")

    # -- what subclasses define -------------------------------------------------------------
    def prepare(self, ops: _Preparer, image_id: str) -> PreparedCall:
        raise NotImplementedError

    def recovery_query(self, image_id: str, call: PreparedCall, created: Sequence[str]) -> ImageQuery:
        """What a lost request for ``image_id`` would have created, for :mod:`..reconcile`.

        Bloom's list gives a resize, remove-background or vectorize result no prompt and no link
        to its source image, so it can never be told apart from the same operation on another
        image: the task fails listing what it finds (``untraceable``). Edits override this.
        """
        body = call.json or {}
        return ImageQuery(
            operation=self.operation,
            action_type=self.action,
            brand_session_id=body.get("brandSessionId"),
            aspect_ratio=body.get("targetAspectRatio"),
            exclude=frozenset(created),
            untraceable=(
                f"Bloom's list gives a {self.action} result no prompt and no link to its source image, "
                f"so it cannot be told apart from a {self.action} of another image"
            ),
        )

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
        return {"id": found.ids[0], "status": "pending", "recovered": True}

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        """Why this (completed) source cannot take the operation, or None."""
        if record.get("actionType") == _VECTOR_ACTION:
            return f"is an SVG (a vectorize result); Bloom cannot {self.action} it"
        return None

    # -- the run ----------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        with bloom_errors(f"Bloom {self.action}"):
            ids = flatten_image_ids(self.image_ids, "image_ids")
            ops = _Preparer(self.hook.client)
            calls = [(image_id, self.prepare(ops, image_id)) for image_id in ids]
            if self.check_sources:
                self._check_sources(ids)
        new_ids = self._post_all(context, calls)
        BloomImageLink.persist_all(context, self.hook.settings.base_url, new_ids)
        self.log.info(
            "Bloom accepted %d %s request(s); new image ids: %s", len(new_ids), self.action, new_ids
        )
        if self.wait_for_completion:
            return self.wait_for_images(context, new_ids)
        return new_ids

    def _check_sources(self, ids: list[str]) -> None:
        """Free GETs before any paid POST: every source exists, is completed and fits the operation."""
        records: dict[str, Mapping[str, Any]] = {}
        for chunk in chunked(ids):
            for record in self.hook.list_images(ids=chunk, limit=len(chunk)).get("images", []):
                records[record["id"]] = record
        problems = []
        for image_id in ids:
            record = records.get(image_id)
            problem = (
                self._status_problem(record)
                if record is not None
                else "was not found (deleted, or not yours)"
            )
            if problem is None and record is not None:
                problem = self.source_problem(record)
            if problem:
                problems.append(f"image {image_id} {problem}")
        if problems:
            raise BloomInputError("image_ids", "; ".join(problems) + ". Nothing was sent to Bloom.")

    def _status_problem(self, record: Mapping[str, Any]) -> str | None:
        status = record.get("status")
        if status in (None, "completed"):  # uploaded/scraped images may carry no status
            return None
        if status == "failed":
            reason = record.get("failureReason") or "no reason given"
            return f"failed ({reason}); there is nothing to {self.action}"
        return (
            f"is not completed yet (status {status!r}); wait for it first "
            "(BloomImageSensor, or wait_for_completion=True upstream)"
        )

    def _post_all(self, context: Context, calls: list[tuple[str, PreparedCall]]) -> list[str]:
        ledger = PaidRequestLedger(context, self.log, reuse_on_clear=self.reuse_on_clear)
        client = self.hook.client
        created: list[str] = []
        for image_id, call in calls:
            payload = {"image_id": image_id, **(call.json or {})}
            recover = functools.partial(self._recover, image_id, call, list(created))
            try:
                send = functools.partial(client.execute, call)
                answer = ledger.run(
                    self.operation,
                    payload,
                    functools.partial(self.paced, send),
                    recover=recover,
                    valid=lambda answer: isinstance(answer.get("id"), str) and bool(answer["id"]),
                )
            except BloomError as exc:
                _paid_failure(exc, f"Bloom {self.action} of image {image_id}", created, self.log)
                raise  # unreachable: _paid_failure always raises
            created.append(str(answer["id"]))
        return created


class EditImageOperator(_PostProcessOperator):
    """Edit completed (or uploaded) Bloom images with a prompt: one new image per input.

    :param image_ids: an image id, a list of ids, or image records (e.g. a sensor's output). Templated.
    :param prompt: what to change (1-2000 characters). Templated.
    :param brand_session_id: the brand; defaults to the connection's ``brand_session_id``. Templated.
    :param image_size: ``"2K"`` (1 credit) or ``"4K"`` (2 credits).
    :param model: ``"fast"``, ``"standard"`` or ``"pro"``.
    :param reference_image_ids: up to 9 extra context images (ids, records, or a search's output). Templated.
    :param check_sources: check before paying that every input is completed and editable (free GETs).
    :param wait_for_completion: wait for the new images and return their records instead of their ids.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param wait_timeout: seconds to wait for the new images.
    :param poll_timeout: seconds per long-poll (1-295).
    :param on_failure: when a new image fails: ``"fail"``, ``"skip"`` or ``"ignore"``.
    :param include_urls: keep signed download URLs in the returned records.
    :return: the new image ids (input order), or their records when waiting.
    """

    operation = "images.edit"
    action = "edit"
    template_fields: Sequence[str] = ("image_ids", "prompt", "brand_session_id", "reference_image_ids")
    template_fields_renderers = {"prompt": "md"}

    def __init__(
        self,
        *,
        prompt: str,
        image_size: str | None = None,
        model: str | None = None,
        reference_image_ids: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image_size = image_size
        self.model = model
        self.reference_image_ids = reference_image_ids
        self.check_literals("prompt", "image_size", "model")

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        return None  # any completed, uploaded or scraped image can be edited

    def recovery_query(self, image_id: str, call: PreparedCall, created: Sequence[str]) -> ImageQuery:
        """An edit result carries its prompt and keeps its source's aspect ratio: one such record,
        created while the request was out and not made earlier by this task, is certain."""
        body = call.json or {}
        try:
            ratio = self.hook.get_image(image_id).get("aspectRatio")
        except BloomError as exc:  # the ratio only narrows the search
            self.log.warning("Could not read the source image %s (%s); matching any ratio", image_id, exc)
            ratio = None
        return ImageQuery(
            operation=self.operation,
            action_type=self.action,
            brand_session_id=body.get("brandSessionId"),
            prompt=body.get("prompt"),
            aspect_ratio=ratio,
            exclude=frozenset(created),
        )

    def prepare(self, ops: _Preparer, image_id: str) -> PreparedCall:
        refs = self.reference_image_ids
        refs = flatten_image_ids(refs, "reference_image_ids") if refs not in (None, [], ()) else None
        return ops.edit_image(
            image_id,
            prompt=self.prompt,
            brand_session_id=self.brand_session_id,
            image_size=self.image_size,
            model=self.model,
            reference_image_ids=refs,
        )


class ResizeImageOperator(_PostProcessOperator):
    """Re-frame completed Bloom images to another aspect ratio (e.g. ``"9:16"`` for stories).

    Costs like a generation of the source's size. Takes the arguments of :class:`EditImageOperator`
    except ``prompt``/``image_size``/``model``/``reference_image_ids``, plus:

    :param target_aspect_ratio: one of Bloom's ratios (``"1:1"``, ``"9:16"``, ``"16:9"``, ...). Templated.
    :return: the new image ids, or their records when waiting.
    """

    operation = "images.resize"
    action = "resize"
    template_fields: Sequence[str] = ("image_ids", "target_aspect_ratio", "brand_session_id")

    def __init__(self, *, target_aspect_ratio: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_aspect_ratio = target_aspect_ratio
        self.check_literals("target_aspect_ratio")

    def prepare(self, ops: _Preparer, image_id: str) -> PreparedCall:
        return ops.resize_image(image_id, self.target_aspect_ratio, brand_session_id=self.brand_session_id)

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        if record.get("aspectRatio") == self.target_aspect_ratio:
            return f"is already {self.target_aspect_ratio}; Bloom refuses a resize to the same ratio"
        return super().source_problem(record)


class RemoveBackgroundOperator(_PostProcessOperator):
    """Cut out the subject of completed Bloom images (a transparent PNG per input).

    Arguments as :class:`ResizeImageOperator` without ``target_aspect_ratio``.

    :return: the new image ids, or their records when waiting.
    """

    operation = "images.removeBackground"
    action = "remove-background"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_literals()

    def prepare(self, ops: _Preparer, image_id: str) -> PreparedCall:
        return ops.remove_background(image_id, brand_session_id=self.brand_session_id)


class VectorizeImageOperator(_PostProcessOperator):
    """Turn completed Bloom images (logo-like marks work best) into SVGs.

    Arguments as :class:`ResizeImageOperator` without ``target_aspect_ratio``.

    :return: the new image ids, or their records when waiting.
    """

    operation = "images.vectorize"
    action = "vectorize"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check_literals()

    def prepare(self, ops: _Preparer, image_id: str) -> PreparedCall:
        return ops.vectorize_image(image_id, brand_session_id=self.brand_session_id)


# --------------------------------------------------------------------------- files from anywhere


@dataclass(frozen=True)
class ImageSource:
    """One thing to upload: an http(s) URL Bloom fetches itself, or a file we read and send."""

    display: str
    url: str | None = None
    path: ObjectStoragePath | Path | None = None


def to_storage_path(value: Any, field: str) -> ObjectStoragePath | Path:
    """A local path (``str``/``PathLike``) or an ``ObjectStoragePath``/``scheme://`` string."""
    from airflow.sdk import ObjectStoragePath

    if isinstance(value, (ObjectStoragePath, Path)):
        return value
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if "://" in str(text):
            return ObjectStoragePath(str(text))
        return Path(text).expanduser()
    raise BloomInputError(field, f"must be a path, an ObjectStoragePath or a URL; got {type(value).__name__}")


def image_source(value: Any, field: str) -> ImageSource:
    """An http(s) URL (sent to Bloom as is) or a file (a local path or an object storage path)."""
    if isinstance(value, str) and urlparse(value).scheme in {"http", "https"}:
        return ImageSource(display=_redact(value), url=check_url(field, value))
    path = to_storage_path(value, field)
    return ImageSource(display=str(path), path=path)


def _is_osp(value: Any) -> bool:
    from airflow.sdk import ObjectStoragePath

    return isinstance(value, ObjectStoragePath)


def check_image_file(source: ImageSource, allowed: tuple[str, ...]) -> str | None:
    """Why this file cannot be uploaded (missing, too big, wrong format), or None. Reads only the head."""
    path = source.path
    assert path is not None
    try:
        if not path.is_file():
            return "does not exist (or is not a file)"
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            return f"is {size} bytes; Bloom accepts at most {MAX_UPLOAD_BYTES} bytes (10 MB)"
        if size == 0:
            return "is empty"
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        return f"cannot be read ({type(exc).__name__}: {exc})"
    mime = sniff_image_type(head)
    if mime not in allowed:
        kinds = ", ".join(m.split("/")[1].split("+")[0].upper() for m in allowed)
        found = "not an image" if mime is None else mime
        return f"is {found}; Bloom accepts {kinds}"
    return None


def read_image_file(source: ImageSource) -> FileInput:
    """The file's bytes as a named binary stream (the client checks size and format again)."""
    path = source.path
    assert path is not None
    if isinstance(path, Path):
        return path
    with path.open("rb") as handle:
        data = handle.read(MAX_UPLOAD_BYTES + 1)
    stream = io.BytesIO(data)
    stream.name = path.name  # type: ignore[misc]
    return stream


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike)) or _is_osp(value):
        return [value]
    if isinstance(value, Mapping):
        return [value]
    return list(value)


def file_digest(data: FileInput) -> str:
    if isinstance(data, io.BytesIO):
        return hashlib.sha256(data.getvalue()).hexdigest()
    return hashlib.sha256(Path(os.fspath(data)).read_bytes()).hexdigest()  # type: ignore[arg-type]


def _send_again(
    post: Callable[[], dict[str, Any]], log: Any, lost: BloomError, attempt: Attempt
) -> dict[str, Any]:
    """Send a lost upload once more: identical bytes (or the same URL's image) answer ``existing``."""
    log.warning("Sending the upload once more (Bloom reuses an identical image in the brand)")
    answer = post()
    if not (isinstance(answer.get("id"), str) and answer["id"]):
        raise lost
    log.warning(
        "The upload sent again answered %s (existing: %s)%s",
        answer.get("id"),
        answer.get("existing"),
        "" if answer.get("existing") else "; the lost one had not been stored",
    )
    return {**answer, "recovered": True}


class UploadImageOperator(BloomBaseOperator):
    """Add images to a brand's library so they can be edited or used as ``reference_image_ids``.

    Sources may be http(s) URLs (Bloom downloads them), local paths, or ``ObjectStoragePath`` /
    ``s3://``-style paths (read here and sent as files). Every file is checked (exists, at most 10 MB,
    PNG/JPEG/WebP/AVIF by its bytes) before anything is sent. An image Bloom already has in the brand
    comes back with ``existing: true`` (and costs nothing new).

    :param images: one source or a list of them. Templated.
    :param brand_session_id: the brand; defaults to the connection's ``brand_session_id``. Templated.
    :param upload_tokens: optional single-use signed-upload tokens (one per file source, in order);
        files then go to Bloom's signed upload endpoint, which needs no API key. Templated.
    :return: ``{"image_ids": [...], "existing_ids": [...], "uploads": [{"source", "id", "existing",
        "width", "height", "mimeType"}, ...]}``.
    """

    template_fields: Sequence[str] = ("images", "brand_session_id", "upload_tokens")
    ui_color = "#f3e8ff"
    operator_extra_links = image_links()

    def __init__(
        self,
        *,
        images: Any,
        brand_session_id: str | None = None,
        upload_tokens: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.brand_session_id = brand_session_id
        self.upload_tokens = upload_tokens

    def execute(self, context: Context) -> dict[str, Any]:
        with bloom_errors("Bloom upload"):
            sources = self._checked_sources()
        ledger = PaidRequestLedger(context, self.log, reuse_on_clear=self.reuse_on_clear)
        tokens = iter(_as_list(self.upload_tokens))
        uploads: list[dict[str, Any]] = []
        for source in sources:
            post, operation, payload = self._request(source, tokens)
            # Bloom answers identical bytes in the brand with the existing image (``existing: true``),
            # so a lost upload answer is safely sent once more. Not for signed uploads: their token is
            # single-use, and the lost request may have spent it.
            recover = (
                None
                if operation == "images.uploadFileSigned"
                else functools.partial(_send_again, functools.partial(self.paced, post), self.log)
            )
            try:
                answer = ledger.run(
                    operation,
                    payload,
                    functools.partial(self.paced, post),
                    recover=recover,
                    valid=lambda answer: isinstance(answer.get("id"), str) and bool(answer["id"]),
                )
            except BloomError as exc:
                created = [u["id"] for u in uploads]
                _paid_failure(exc, f"Bloom upload of {source.display}", created, self.log)
                raise
            uploads.append(
                {
                    "source": source.display,
                    "id": answer.get("id"),
                    "existing": bool(answer.get("existing")),
                    "width": answer.get("width"),
                    "height": answer.get("height"),
                    "mimeType": answer.get("mimeType"),
                }
            )
            self.log.info(
                "Uploaded %s -> %s%s",
                source.display,
                answer.get("id"),
                " (existing)" if answer.get("existing") else "",
            )
        BloomImageLink.persist_all(context, self.hook.settings.base_url, [u["id"] for u in uploads])
        return {
            "image_ids": [u["id"] for u in uploads],
            "existing_ids": [u["id"] for u in uploads if u["existing"]],
            "uploads": uploads,
        }

    def _checked_sources(self) -> list[ImageSource]:
        items = _as_list(self.images)
        if not items:
            raise BloomInputError("images", "no images were given")
        sources = [image_source(item, f"images[{i}]") for i, item in enumerate(items)]
        tokens = _as_list(self.upload_tokens)
        files = [s for s in sources if s.path is not None]
        if tokens and len(tokens) != len(files):
            raise BloomInputError(
                "upload_tokens",
                f"needs one single-use token per file source: {len(files)} file(s), {len(tokens)} token(s)",
            )
        if len(files) > len(tokens) or len(files) < len(sources):  # some sources need the brand
            brand = self.brand_session_id or self.hook.settings.brand_session_id
            if not brand:
                raise BloomInputError(
                    "brand_session_id",
                    "is required (pass it, or set the Bloom connection's brand_session_id extra)",
                )
            check_uuid("brand_session_id", brand)
        allowed = allowed_mimes("images.uploadFile")
        problems = [f"{s.display} {p}" for s in files if (p := check_image_file(s, allowed))]
        if problems:
            raise BloomInputError("images", "; ".join(problems) + ". Nothing was sent to Bloom.")
        return sources

    def _request(
        self, source: ImageSource, tokens: Iterator[str]
    ) -> tuple[Callable[[], dict[str, Any]], str, dict[str, Any]]:
        hook = self.hook
        brand = self.brand_session_id or hook.settings.brand_session_id
        if source.url is not None:
            url = source.url
            return (
                lambda: hook.upload_image(url, brand_session_id=self.brand_session_id),
                "images.upload",
                {"image_url": url, "brand": brand},
            )
        data = read_image_file(source)
        payload = {"sha256": file_digest(data), "brand": brand}
        token = next(tokens, None)
        if token is not None:
            return (lambda: hook.upload_image_file_signed(token, data), "images.uploadFileSigned", payload)
        return (
            lambda: hook.upload_image_file(data, brand_session_id=self.brand_session_id),
            "images.uploadFile",
            payload,
        )


# --------------------------------------------------------------------------- library


class SearchImagesOperator(BloomBaseOperator):
    """Semantic search in a brand's library (uploaded and scraped images).

    The result feeds ``reference_image_ids`` of a generation or an edit directly.

    :param query: a visual concept, e.g. ``"product on white background"`` (1-500 chars). Templated.
    :param brand_session_id: the brand; defaults to the connection's ``brand_session_id``. Templated.
    :param limit: at most this many candidates (1-50, default 10).
    :param max_distance: cosine-distance cutoff 0-2 (Bloom's default 0.7; smaller is stricter).
    :param fail_if_empty: fail (without retries) when nothing matches, instead of returning ``[]``.
    :return: the candidate image ids, closest first.
    """

    template_fields: Sequence[str] = ("query", "brand_session_id")
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        query: str,
        brand_session_id: str | None = None,
        limit: int | None = 10,
        max_distance: float | None = None,
        fail_if_empty: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.query = query
        self.brand_session_id = brand_session_id
        self.limit = limit
        self.max_distance = max_distance
        self.fail_if_empty = fail_if_empty

    def execute(self, context: Context) -> list[str]:
        with bloom_errors("Bloom image search"):
            found = self.hook.search_images(
                self.query,
                brand_session_id=self.brand_session_id,
                limit=self.limit,
                max_distance=self.max_distance,
            )
            candidates = found.get("candidates", [])
            for c in candidates:
                self.log.info("%s (distance %s): %s", c.get("id"), c.get("distance"), c.get("description"))
            if not candidates and self.fail_if_empty:
                raise BloomInputError("query", f"no image in the brand's library matches {self.query!r}")
        return [str(c["id"]) for c in candidates]


class ListImagesOperator(BloomBaseOperator):
    """Look up images: by id (any source), or by filters across a brand or workspace.

    :param image_ids: ids or records to look up (one id uses ``GET /images/{id}``). Templated.
    :param brand_session_id: filter by brand (filters are ignored when ``image_ids`` is given). Templated.
    :param workspace_id: filter by workspace. Templated.
    :param source: ``"generated"``, ``"uploaded"`` or ``"scraped"``.
    :param status: ``"pending"``, ``"generating"``, ``"completed"`` or ``"failed"`` (generated only).
    :param action_type: e.g. ``"generation"``, ``"resize"``, ``"vectorize"`` (generated only).
    :param max_results: stop after this many records (keeps XCom small).
    :param include_urls: keep signed download URLs in the records.
    :return: image records (``id``, ``status``, ``imageUrl``, ``width``, ``height``, ``aspectRatio``, ...).
    """

    template_fields: Sequence[str] = ("image_ids", "brand_session_id", "workspace_id")
    ui_color = "#f3e8ff"

    def __init__(
        self,
        *,
        image_ids: Any = None,
        brand_session_id: str | None = None,
        workspace_id: str | None = None,
        source: str | None = None,
        status: str | None = None,
        action_type: str | None = None,
        max_results: int = 100,
        include_urls: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image_ids = image_ids
        self.brand_session_id = brand_session_id
        self.workspace_id = workspace_id
        self.source = source
        self.status = status
        self.action_type = action_type
        self.max_results = max_results
        self.include_urls = include_urls

    def execute(self, context: Context) -> list[dict[str, Any]]:
        with bloom_errors("Bloom image lookup"):
            records = list(self._records())
        return [slim_record(r, include_urls=self.include_urls) for r in records]

    def _records(self) -> Iterator[Mapping[str, Any]]:
        hook = self.hook
        urls = self.include_urls or None
        if self.image_ids not in (None, [], ()):
            ids = flatten_image_ids(self.image_ids, "image_ids")
            if len(ids) == 1:
                yield hook.get_image(ids[0])
                return
            found: dict[str, Mapping[str, Any]] = {}
            for chunk in chunked(ids):
                for record in hook.list_images(ids=chunk, limit=len(chunk), include_urls=urls).get(
                    "images", []
                ):
                    found[record["id"]] = record
            missing = [i for i in ids if i not in found]
            if missing:
                self.log.warning(
                    "Bloom did not return %d image(s) (deleted, or not yours): %s", len(missing), missing
                )
            yield from (found[i] for i in ids if i in found)
            return
        if self.max_results < 1:
            raise BloomInputError("max_results", f"must be at least 1; got {self.max_results}")
        images = hook.iter_images(
            brand_session_id=self.brand_session_id,
            workspace_id=self.workspace_id,
            source=self.source,
            status=self.status,
            action_type=self.action_type,
            include_urls=urls,
            limit=min(100, self.max_results),
        )
        for count, record in enumerate(images, start=1):
            yield record
            if count >= self.max_results:
                return


class DeleteImagesOperator(BloomBaseOperator):
    """Delete any number of images (sent in chunks of at most 50 ids).

    Ids that are already gone (or not yours) are skipped by Bloom, not errors: a cleanup task can run
    twice.

    :param image_ids: ids or records (a sensor's or an operator's output). Templated.
    :return: ``{"requested": n, "deleted_count": m}``.
    """

    template_fields: Sequence[str] = ("image_ids",)
    ui_color = "#fde2e2"

    def __init__(self, *, image_ids: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image_ids = image_ids

    def execute(self, context: Context) -> dict[str, int]:
        deleted = 0
        with bloom_errors("Bloom image deletion"):
            ids = flatten_image_ids(self.image_ids, "image_ids")
            if len(ids) == 1:
                try:
                    self.hook.delete_image(ids[0])
                    deleted = 1
                except BloomNotFoundError:
                    self.log.info("Image %s was already gone", ids[0])
            else:
                for chunk in chunked(ids):
                    answer = self.paced(functools.partial(self.hook.delete_images, chunk))
                    deleted += int(answer.get("deletedCount", 0))
        self.log.info("Deleted %d of %d image(s)", deleted, len(ids))
        return {"requested": len(ids), "deleted_count": deleted}


__all__ = [
    "DeleteImagesOperator",
    "EditImageOperator",
    "ListImagesOperator",
    "RemoveBackgroundOperator",
    "ResizeImageOperator",
    "SearchImagesOperator",
    "UploadImageOperator",
    "VectorizeImageOperator",
]
