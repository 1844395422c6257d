"""Records as Bloom answers them (the spec's response shapes), and cursor pagination."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_bloom.emulator.errors import EmulatorError
from airflow_provider_bloom.emulator.state import BRAND_COLORS, BRAND_FONTS, Store
from airflow_provider_bloom.emulator.stored import StoredBrand, StoredImage, iso

T = TypeVar("T")


@dataclass(frozen=True)
class UrlContext:
    """Where links point: the API's origin and a signer for download URLs."""

    origin: str
    sign: Callable[[str], str]

    def short_url(self, file_id: str) -> str:
        return f"{self.origin}/img/{file_id}"

    def absolute(self, url: str | None) -> str | None:
        return f"{self.origin}{url}" if url is not None and url.startswith("/") else url


def image_view(store: Store, record: StoredImage, urls: UrlContext, signed: bool = False) -> dict[str, Any]:
    """GET /images/{id} and the items of GET /images; ``signed`` swaps the short link for a download URL."""
    now = store.clock()
    has_file = record.has_file(now)
    completed = not record.generated or record.status(now) == "completed"
    url = None
    if has_file:
        url = urls.sign(record.id) if signed else urls.short_url(record.id)
    return {
        "id": record.id,
        "source": record.source,
        "brandSessionId": record.brand_id,
        "status": record.status(now),
        "failureReason": record.failure_reason if record.status(now) == "failed" else None,
        "prompt": record.prompt,
        "description": record.description,
        "imageUrl": url,
        "aspectRatio": record.aspect_ratio,
        "width": record.width if completed else None,
        "height": record.height if completed else None,
        "actionType": record.action_type,
        "variantGroupId": record.variant_group_id,
        "workspaceId": record.workspace_id,
        "workspaceName": store.workspace_name(record.workspace_id),
        "createdAt": iso(record.created_at),
    }


def upload_view(record: StoredImage, urls: UrlContext, existing: bool) -> dict[str, Any]:
    return {
        "id": record.id,
        "imageUrl": urls.short_url(record.id),
        "width": record.width,
        "height": record.height,
        "mimeType": record.mime_type(),
        "existing": existing,
    }


def candidate_view(record: StoredImage, distance: float, urls: UrlContext) -> dict[str, Any]:
    return {
        "id": record.id,
        "url": urls.short_url(record.id),
        "description": record.description or "",
        "width": record.width,
        "height": record.height,
        "aspectRatio": record.aspect_ratio,
        "distance": distance,
    }


def brand_summary(store: Store, brand: StoredBrand) -> dict[str, Any]:
    """An item of GET /brands."""
    return {
        "id": brand.id,
        "name": brand.name,
        "url": brand.url,
        "status": brand.status(store.clock()),
        "imageCount": store.image_count(brand.id),
        "workspaceId": brand.workspace_id,
        "workspaceName": store.workspace_name(brand.workspace_id),
        "createdAt": iso(brand.created_at),
    }


def brand_view(store: Store, brand: StoredBrand, urls: UrlContext) -> dict[str, Any]:
    """GET /brands/{id}: identity details once analysis succeeded, failure details when it failed."""
    status = brand.status(store.clock())
    ready = status == "ready"
    view: dict[str, Any] = {
        "id": brand.id,
        "status": status,
        "failure": None,
        "name": brand.name,
        "url": brand.url,
        "logoUrl": urls.absolute(brand.logo_url),
        "colors": list(BRAND_COLORS) if ready else [],
        "fonts": list(BRAND_FONTS) if ready else [],
        "aesthetic": "Clean, modern and friendly" if ready else None,
        "summary": f"{brand.name} is a brand emulated for offline tests." if ready else None,
        "workspaceId": brand.workspace_id,
        "workspaceName": store.workspace_name(brand.workspace_id),
        "createdAt": iso(brand.created_at),
    }
    if status == "failed":
        view["failure"] = {"code": brand.failure_code, "message": brand.failure_message}
    if status == "logo_required":
        view["logoError"] = "No usable logo was found on the website; upload one."
    return view


# ---------------------------------------------------------------------- pagination


def _encode(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str) -> Any:
    padded = cursor + "=" * (-len(cursor) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None
    has_more: bool


def keyset_page(
    items: Sequence[T], key: Callable[[T], tuple[float, str]], limit: int, cursor: str | None
) -> Page:
    """Items after ``cursor`` (the key of the last item seen). ``items`` must be sorted by ``key``.

    The spec declares no 400 for the list endpoints, so a cursor that cannot be read
    answers an empty last page rather than an error.
    """
    start = 0
    if cursor:
        try:
            last = _decode(cursor)
            after = (float(last[0]), str(last[1]))
        except (ValueError, TypeError, IndexError, KeyError, UnicodeDecodeError):
            return Page([], None, False)
        start = next((i for i, item in enumerate(items) if key(item) > after), len(items))
    page = list(items[start : start + limit])
    has_more = start + limit < len(items)
    return Page(page, _encode(list(key(page[-1]))) if has_more and page else None, has_more)


def offset_page(items: Sequence[T], limit: int, cursor: str | None, scope: str) -> Page:
    """Offset pagination for search; the cursor is bound to the query (``scope``)."""
    start = 0
    if cursor:
        try:
            payload = _decode(cursor)
            start = int(payload["o"])
            valid = payload["s"] == scope and start >= 0
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            valid = False
        if not valid:
            raise EmulatorError(400, "INVALID_CURSOR")
    page = list(items[start : start + limit])
    has_more = start + limit < len(items)
    return Page(page, _encode({"o": start + limit, "s": scope}) if has_more else None, has_more)
