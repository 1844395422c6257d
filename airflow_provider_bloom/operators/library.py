"""Operators on a brand's image library: upload images to it, search it, list and delete images.

Importable from :mod:`airflow_provider_bloom.operators.images` too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.client.spec import check_uuid, chunked
from airflow_provider_bloom.exceptions import BloomError, BloomInputError, BloomNotFoundError
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.logic.reconcile import Attempt
from airflow_provider_bloom.logic.records import ImageRecord, flatten_image_ids, slim_record
from airflow_provider_bloom.operators._files import (
    IMAGE_UPLOAD,
    ImageSource,
    as_list,
    check_image_file,
    image_source,
)
from airflow_provider_bloom.tasks.base import BloomBaseOperator, bloom_errors, paid_step
from airflow_provider_bloom.tasks.ledger import has_id

if TYPE_CHECKING:
    from airflow.sdk import Context


def _send_again(
    post: Callable[[], dict[str, Any]], log: Any, lost: BloomError, attempt: Attempt
) -> dict[str, Any]:
    """Send a lost upload once more: identical bytes (or the same URL's image) answer ``existing``."""
    log.warning("Sending the upload once more (Bloom reuses an identical image in the brand)")
    answer = post()
    if not has_id(answer):
        raise lost
    log.warning(
        "The upload sent again answered %s (existing: %s)%s",
        answer.get("id"),
        answer.get("existing"),
        "" if answer.get("existing") else "; the lost one had not been stored",
    )
    return {**answer, "recovered": True}


class BloomUploadImageOperator(BloomBaseOperator):
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
        ledger = self.ledger(context)
        tokens = iter(as_list(self.upload_tokens))
        uploads: list[dict[str, Any]] = []
        for source in sources:
            with paid_step(f"Bloom upload of {source.display}", [u["id"] for u in uploads], self.log):
                token = next(tokens, None) if source.path is not None else None
                call = IMAGE_UPLOAD.request_for(
                    self.hook, source, token=token, body={"brand_session_id": self.brand_session_id}
                )
                post = functools.partial(self.paced, functools.partial(self.hook.send, call))
                # Bloom answers identical bytes in the brand with the existing image (``existing: true``),
                # so a lost upload answer is safely sent once more. Not for signed uploads: their token
                # is single-use, and the lost request may have spent it.
                recover = None if token is not None else functools.partial(_send_again, post, self.log)
                answer = ledger.pay(call, post, recover=recover, valid=has_id)
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
        items = as_list(self.images)
        if not items:
            raise BloomInputError("images", "no images were given")
        sources = [image_source(item, f"images[{i}]") for i, item in enumerate(items)]
        tokens = as_list(self.upload_tokens)
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
        problems = [f"{s.display} {p}" for s in files if (p := check_image_file(s, IMAGE_UPLOAD.by_file))]
        if problems:
            raise BloomInputError("images", "; ".join(problems) + ". Nothing was sent to Bloom.")
        return sources


# --------------------------------------------------------------------------- library


class BloomSearchImagesOperator(BloomBaseOperator):
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


class BloomListImagesOperator(BloomBaseOperator):
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

    def execute(self, context: Context) -> list[ImageRecord]:
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
            found = self.records_by_id(ids, include_urls=urls)
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


class BloomDeleteImagesOperator(BloomBaseOperator):
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
    "BloomDeleteImagesOperator",
    "BloomListImagesOperator",
    "BloomSearchImagesOperator",
    "BloomUploadImageOperator",
]
