"""The 23 operations. Each handler takes a validated :class:`Call` and returns ``(status, data)``.

Authentication, rate limiting and input validation happen before a handler runs
(:mod:`airflow_provider_bloom.emulator.app`); Bloom's rules live in :mod:`state`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from airflow_provider_bloom.emulator.config import ACCOUNT_EMAIL, DEFAULT_BRAND_ID, DOWNLOAD_FAILS_MARKER
from airflow_provider_bloom.emulator.errors import EmulatorError, bad_request
from airflow_provider_bloom.emulator.media import sniff
from airflow_provider_bloom.emulator.png import cached_png
from airflow_provider_bloom.emulator.runtime import Emulator
from airflow_provider_bloom.emulator.spec import OperationSpec, is_uuid
from airflow_provider_bloom.emulator.state import ImageFilter, Store
from airflow_provider_bloom.emulator.stored import StoredFile, StoredImage
from airflow_provider_bloom.emulator.validation import UploadedFile
from airflow_provider_bloom.emulator.views import (
    UrlContext,
    brand_summary,
    brand_view,
    candidate_view,
    image_view,
    keyset_page,
    offset_page,
    upload_view,
)

MAX_IDS = 50
DEFAULT_WAIT_TIMEOUT = 120
ACCOUNT_NAME = "Emulator Developer"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
IMAGE_UPLOAD_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/avif"})
LOGO_UPLOAD_TYPES = IMAGE_UPLOAD_TYPES | {"image/svg+xml"}
_OWN_FILE_PATH = re.compile(r"^/(?:img|_files)/([^/]+)$")


@dataclass
class Call:
    """One validated API request."""

    emulator: Emulator
    op: OperationSpec
    params: dict[str, Any]
    body: dict[str, Any]
    urls: UrlContext
    #: ``host:port`` the request arrived on (to recognise the emulator's own URLs).
    netloc: str

    @property
    def store(self) -> Store:
        return self.emulator.store

    def flag(self, name: str) -> bool:
        return self.params.get(name) in (True, "true", "1")


Result = tuple[int, Any]
Handler = Callable[[Call], Awaitable[Result]]
HANDLERS: dict[str, Handler] = {}


def handles(operation_id: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        HANDLERS[operation_id] = func
        return func

    return register


def _ids(raw: str | None) -> list[str] | None:
    """A comma-separated id list: at most 50; entries that are not UUIDs match nothing."""
    if raw is None:
        return None
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if len(ids) > MAX_IDS:
        raise bad_request(
            f"At most {MAX_IDS} ids per call",
            [{"path": ["ids"], "message": f"{len(ids)} ids given, at most 50"}],
        )
    return [i for i in ids if is_uuid(i)]


async def _wait(call: Call, read: Callable[[], list[Any]]) -> list[Any]:
    if not call.flag("wait"):
        return read()
    return list(
        await call.emulator.hub.until_terminal(read, call.params.get("timeout", DEFAULT_WAIT_TIMEOUT))
    )


def _get_one(lookup: Callable[[Store, str], Any], view: Callable[[Store, Any, UrlContext], Any]) -> Handler:
    """A ``GET .../{id}`` handler: the record the path's ``id`` names, in its public ``view``.

    With ``wait``, the record once it is terminal (or the wait's timeout ran out).
    """

    async def get(call: Call) -> Result:
        record_id = call.params["id"]
        (record,) = await _wait(call, lambda: [lookup(call.store, record_id)])
        return 200, view(call.store, record, call.urls)

    return get


def _deleted(call: Call, record: Any, **fields: Any) -> Result:
    """The answer to a delete: the record's id, ``fields``, and its workspace; held long-polls re-read."""
    call.emulator.hub.wake_all()
    ws = record.workspace_id
    return 200, {"id": record.id, **fields, "workspaceId": ws, "workspaceName": call.store.workspace_name(ws)}


# ---------------------------------------------------------------------- account


@handles("account.get")
async def account_get(call: Call) -> Result:
    return 200, {"email": ACCOUNT_EMAIL, "name": ACCOUNT_NAME}


@handles("credits.get")
async def credits_get(call: Call) -> Result:
    ws = call.store.workspace(call.params.get("workspaceId"))
    return 200, {"balance": ws.balance, "unlimited": ws.unlimited}


@handles("workspaces.list")
async def workspaces_list(call: Call) -> Result:
    workspaces = sorted(call.store.workspaces.values(), key=lambda w: (not w.is_personal, w.name))
    return 200, {
        "workspaces": [{"id": w.id, "name": w.name, "is_personal": w.is_personal} for w in workspaces]
    }


# ---------------------------------------------------------------------- brands


@handles("brands.list")
async def brands_list(call: Call) -> Result:
    brands = call.store.list_brands(call.params.get("workspaceId"))
    page = keyset_page(
        brands, lambda b: (-b.created_at, b.id), call.params.get("limit", 50), call.params.get("cursor")
    )
    items = [brand_summary(call.store, b) for b in page.items]
    return 200, {"brands": items, "nextCursor": page.next_cursor, "hasMore": page.has_more}


@handles("brands.create")
async def brands_create(call: Call) -> Result:
    body = call.body
    brand = call.store.create_brand(
        body["url"], body.get("workspaceId"), body.get("logoUrl"), body.get("collectImages", True)
    )
    return 202, {"id": brand.id, "status": "analyzing"}


handles("brands.get")(_get_one(Store.brand, brand_view))


@handles("brands.delete")
async def brands_delete(call: Call) -> Result:
    brand = call.store.delete_brand(call.params["id"])
    return _deleted(call, brand, name=brand.name)


def _logo_answer(call: Call, brand_id: str) -> Result:
    call.emulator.hub.wake_all()
    brand = call.store.brand(brand_id)
    return 202, {"id": brand.id, "status": brand.status(call.store.clock())}


@handles("brands.updateLogo")
async def brands_update_logo(call: Call) -> Result:
    logo_url = call.body["logoUrl"]
    if urlparse(logo_url).scheme not in ("http", "https"):
        raise EmulatorError(400, "INVALID_LOGO", data={"logoUrl": logo_url})
    call.store.update_logo(call.params["id"], logo_url)
    return _logo_answer(call, call.params["id"])


def _logo_file(call: Call) -> StoredFile:
    upload = call.body["file"]
    assert isinstance(upload, UploadedFile)
    sniffed = sniff(upload.data)
    if upload.too_large or sniffed is None or sniffed.mime_type not in LOGO_UPLOAD_TYPES:
        reason = "file exceeds 10 MB" if upload.too_large else "not a PNG, JPEG, WebP, SVG or AVIF image"
        raise EmulatorError(400, "INVALID_LOGO", f"Logo could not be validated: {reason}")
    return StoredFile(upload.data, sniffed.mime_type)


@handles("brands.uploadLogoFile")
async def brands_upload_logo_file(call: Call) -> Result:
    brand_id = call.params["id"]
    call.store.brand(brand_id)
    call.store.update_logo(brand_id, None, _logo_file(call))
    return _logo_answer(call, brand_id)


@handles("brands.uploadLogoFileSigned")
async def brands_upload_logo_file_signed(call: Call) -> Result:
    brand_id, token = call.params["id"], call.params["token"]
    call.store.upload_token(token, "logo", brand_id)
    call.store.brand(brand_id)
    call.store.update_logo(brand_id, None, _logo_file(call))
    call.store.spend_upload_token(token)
    return _logo_answer(call, brand_id)


# ---------------------------------------------------------------------- images: reading


@handles("images.list")
async def images_list(call: Call) -> Result:
    p = call.params
    flt = ImageFilter(
        ids=_ids(p.get("ids")),
        workspace_id=p.get("workspaceId"),
        brand_id=p.get("brandSessionId"),
        source=p.get("source"),
        status=p.get("status"),
        action_type=p.get("actionType"),
    )
    if flt.ids is not None:
        records = await _wait(call, lambda: call.store.list_images(flt))
    else:
        records = call.store.list_images(flt)
    page = keyset_page(records, lambda r: (-r.created_at, r.id), p.get("limit", 50), p.get("cursor"))
    signed = call.flag("includeUrls")
    items = [image_view(call.store, r, call.urls, signed) for r in page.items]
    return 200, {"images": items, "nextCursor": page.next_cursor, "hasMore": page.has_more}


handles("images.get")(_get_one(Store.image, image_view))


@handles("images.delete")
async def images_delete(call: Call) -> Result:
    record = call.store.delete_image(call.params["id"])
    return _deleted(call, record, source=record.source)


@handles("images.deleteMany")
async def images_delete_many(call: Call) -> Result:
    deleted = 0
    for image_id in _ids(call.params.get("ids")) or []:
        if image_id in call.store.images:
            call.store.delete_image(image_id)
            deleted += 1
    call.emulator.hub.wake_all()
    return 200, {"deletedCount": deleted}


@handles("images.search")
async def images_search(call: Call) -> Result:
    body = call.body
    query = body["query"]
    hits = call.store.search(body["brandSessionId"], query, body.get("maxDistance", 0.7))
    scope = hashlib.sha256(f"{body['brandSessionId']}\n{query}".encode()).hexdigest()[:12]
    page = offset_page(hits, int(body.get("limit", 10)), body.get("cursor"), scope)
    candidates = [candidate_view(record, distance, call.urls) for record, distance in page.items]
    return 200, {
        "query": query,
        "candidates": candidates,
        "nextCursor": page.next_cursor,
        "hasMore": page.has_more,
    }


# ---------------------------------------------------------------------- images: paid work


def _started(record: StoredImage) -> Result:
    return 202, {"id": record.id, "status": "pending"}


@handles("images.generate")
async def images_generate(call: Call) -> Result:
    body = call.body
    records = call.store.generate(
        brand_id=body["brandSessionId"],
        prompt=body["prompt"],
        aspect_ratio=body.get("aspectRatio", "1:1"),
        image_size=body.get("imageSize", "2K"),
        model=body.get("model"),
        variant_count=int(body.get("variantCount", 1)),
        reference_ids=body.get("referenceImageIds", []),
    )
    return 202, {
        "ids": [r.id for r in records],
        "variantGroupId": records[0].variant_group_id,
        "status": "pending",
    }


@handles("images.edit")
async def images_edit(call: Call) -> Result:
    body = call.body
    record = call.store.edit(
        image_id=call.params["id"],
        brand_id=body["brandSessionId"],
        prompt=body["prompt"],
        image_size=body.get("imageSize", "2K"),
        model=body.get("model"),
        reference_ids=body.get("referenceImageIds", []),
    )
    return _started(record)


@handles("images.resize")
async def images_resize(call: Call) -> Result:
    body = call.body
    return _started(
        call.store.resize(
            image_id=call.params["id"],
            brand_id=body["brandSessionId"],
            target_aspect_ratio=body["targetAspectRatio"],
        )
    )


@handles("images.removeBackground")
async def images_remove_background(call: Call) -> Result:
    return _started(
        call.store.remove_background(image_id=call.params["id"], brand_id=call.body["brandSessionId"])
    )


@handles("images.vectorize")
async def images_vectorize(call: Call) -> Result:
    return _started(call.store.vectorize(image_id=call.params["id"], brand_id=call.body["brandSessionId"]))


# ---------------------------------------------------------------------- images: uploads


def _store_upload(call: Call, brand_id: str, data: bytes, too_large: bool, description: str) -> Result:
    if too_large or len(data) > call.emulator.config.max_upload_bytes:
        raise EmulatorError(400, "FILE_TOO_LARGE", data={"maxBytes": call.emulator.config.max_upload_bytes})
    sniffed = sniff(data)
    if sniffed is None or sniffed.mime_type not in IMAGE_UPLOAD_TYPES:
        raise EmulatorError(400, "UNSUPPORTED_FORMAT", data={"accepted": sorted(IMAGE_UPLOAD_TYPES)})
    record, existing = call.store.add_upload(brand_id, data, sniffed, description)
    return 200, upload_view(record, call.urls, existing)


def _file_description(upload: UploadedFile) -> str:
    return f"Uploaded image {upload.filename}" if upload.filename else "Uploaded image"


@handles("images.uploadFile")
async def images_upload_file(call: Call) -> Result:
    brand_id = call.body["brandSessionId"]
    call.store.brand(brand_id, 422)
    upload: UploadedFile = call.body["file"]
    return _store_upload(call, brand_id, upload.data, upload.too_large, _file_description(upload))


@handles("images.uploadFileSigned")
async def images_upload_file_signed(call: Call) -> Result:
    token = call.params["token"]
    found = call.store.upload_token(token, "image")
    brand_id = found.brand_id or DEFAULT_BRAND_ID
    call.store.brand(brand_id, 400, "BRAND_NOT_FOUND")
    upload: UploadedFile = call.body["file"]
    result = _store_upload(call, brand_id, upload.data, upload.too_large, _file_description(upload))
    call.store.spend_upload_token(token)
    return result


@handles("images.upload")
async def images_upload(call: Call) -> Result:
    url, brand_id = call.body["imageUrl"], call.body["brandSessionId"]
    if urlparse(url).scheme not in ("http", "https"):
        raise EmulatorError(400, "INVALID_URL", data={"imageUrl": url})
    call.store.brand(brand_id)
    data = await _download(call, url)
    name = urlparse(url).path.rsplit("/", 1)[-1]
    return _store_upload(call, brand_id, data, False, f"Uploaded image {name}".strip())


async def _download(call: Call, url: str) -> bytes:
    """Bytes behind ``url`` without leaving the machine, and without calling other local services.

    The emulator's own ``/img``/``_files`` links (any loopback name for its own port) are read
    directly; other loopback URLs are fetched only from the origins a test listed in
    ``fetch_url_origins`` (else 400 ``DOWNLOAD_FAILED``, as Bloom, which cannot reach your machine,
    would answer); any other URL yields a synthetic PNG derived from the URL, or 400
    ``DOWNLOAD_FAILED`` when it contains :data:`DOWNLOAD_FAILS_MARKER`.
    """
    if DOWNLOAD_FAILS_MARKER in url:
        raise EmulatorError(400, "DOWNLOAD_FAILED")
    parsed = urlparse(url)
    if parsed.hostname not in LOOPBACK_HOSTS:
        digest = hashlib.sha256(url.encode()).digest()
        return cached_png(800 + digest[0] % 8 * 100, 600 + digest[1] % 8 * 100, False, digest[2] or 1)
    own = _OWN_FILE_PATH.match(parsed.path)
    if own and _is_own_server(parsed.port, call.netloc):
        item = call.emulator.servable(own.group(1))
        if item is None:
            raise EmulatorError(400, "DOWNLOAD_FAILED")
        return (await call.emulator.file_bytes(item))[0]
    config = call.emulator.config
    if not config.may_fetch(url):
        raise EmulatorError(
            400,
            "DOWNLOAD_FAILED",
            "The emulator fetches loopback URLs only from origins listed in its fetch_url_origins setting",
        )
    return await _fetch_loopback(url, config.max_upload_bytes, config.may_fetch)


def _is_own_server(port: int | None, netloc: str) -> bool:
    """Whether a loopback URL's port is the one this request came in on (the emulator itself)."""
    own_port = urlparse(f"//{netloc}").port
    return port is not None and port == own_port


async def _fetch_loopback(url: str, max_bytes: int, allowed: Callable[[str], bool]) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=10.0, follow_redirects=False, trust_env=False) as client:
            for _ in range(5):
                async with client.stream("GET", url) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        url = str(response.url.join(location))
                        if urlparse(url).hostname not in LOOPBACK_HOSTS or not allowed(url):
                            break
                        continue
                    if response.status_code != 200:
                        break
                    chunks, size = [], 0
                    async for chunk in response.aiter_bytes():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size > max_bytes:
                            raise EmulatorError(400, "FILE_TOO_LARGE")
                    return b"".join(chunks)
    except httpx.HTTPError:
        pass
    raise EmulatorError(400, "DOWNLOAD_FAILED")
