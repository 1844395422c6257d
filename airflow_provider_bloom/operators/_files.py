"""Image sources for the operators that send files (image uploads, brand logos): an http(s) URL that
Bloom fetches itself, or a file (a local path or an ``ObjectStoragePath``) read here and sent.

Each source is checked before anything is sent (exists, at most 10 MB, an accepted format by its
bytes), then turned into a prepared call by one table (:class:`UploadRoute`) per kind of upload.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow_provider_bloom.client.spec import MAX_UPLOAD_BYTES, check_url
from airflow_provider_bloom.exceptions import BloomInputError

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_bloom.client.core import PreparedCall
    from airflow_provider_bloom.client.files import FileInput
    from airflow_provider_bloom.hooks.bloom import BloomHook


@dataclass(frozen=True)
class ImageSource:
    """One thing to upload: an http(s) URL Bloom fetches itself, or a file we read and send."""

    display: str
    url: str | None = None
    path: ObjectStoragePath | Path | None = None


def redact_url(source: str) -> str:
    """A URL without its query string (presigned URLs carry credentials there)."""
    parsed = urlparse(source)
    if parsed.scheme in {"http", "https"} and (parsed.query or parsed.password):
        host = parsed.hostname or ""
        port = f":{parsed.port}" if parsed.port else ""
        return f"{parsed.scheme}://{host}{port}{parsed.path}"
    return source


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
        return ImageSource(display=redact_url(value), url=check_url(field, value))
    path = to_storage_path(value, field)
    return ImageSource(display=str(path), path=path)


def as_list(value: Any) -> list[Any]:
    """One source (a string, a path, a record) or many, as a list."""
    from airflow.sdk import ObjectStoragePath

    if value is None:
        return []
    if isinstance(value, (str, bytes, os.PathLike, ObjectStoragePath, Mapping)):
        return [value]
    return list(value)


def check_image_file(source: ImageSource, operation_id: str) -> str | None:
    """Why this file cannot be sent by ``operation_id`` (missing, too big, a format the spec does not
    list for it), or None. Reads only the head."""
    from airflow_provider_bloom.client.files import allowed_mimes, sniff_image_type

    allowed = allowed_mimes(operation_id)

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


@dataclass(frozen=True)
class UploadRoute:
    """The three operations one kind of upload goes through, and the body field of the URL form."""

    by_url: str
    url_field: str
    by_file: str
    by_signed_file: str

    def request_for(
        self,
        hook: BloomHook,
        source: ImageSource,
        *,
        token: str | None = None,
        path: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> PreparedCall:
        """Build the checked call that sends ``source``: by URL, as a file, or as a file with a signed
        token (through ``hook.prepare``)."""
        path, body = dict(path or {}), dict(body or {})
        if source.url is not None:
            return hook.prepare(self.by_url, path=path, body={**body, self.url_field: source.url})
        data = read_image_file(source)
        if token is not None:
            return hook.prepare(self.by_signed_file, path={**path, "token": token}, file=data)
        return hook.prepare(self.by_file, path=path, body=body, file=data)


IMAGE_UPLOAD = UploadRoute("images.upload", "image_url", "images.uploadFile", "images.uploadFileSigned")
LOGO_UPLOAD = UploadRoute(
    "brands.updateLogo", "logo_url", "brands.uploadLogoFile", "brands.uploadLogoFileSigned"
)
