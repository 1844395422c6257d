"""File inputs: what an upload may be, how it is read and checked, and how an image's type is told.

Used by the client (multipart uploads, opened downloads), the library and logo operators (checks at
parse time) and the download operator (file extensions, the :class:`Download` it reads). Cheap to
import: no HTTP stack.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from airflow_provider_bloom.client.spec import MAX_UPLOAD_BYTES, Operation, get_operation
from airflow_provider_bloom.exceptions import BloomInputError

#: What an upload may be: a path, bytes, or a binary file object.
FileInput = str | os.PathLike | bytes | bytearray | IO[bytes]

# What may come before an SVG's root element: a BOM, whitespace, the XML declaration,
# processing instructions, comments and a DOCTYPE.
_SVG_PROLOGUE = re.compile(
    rb"(?:\xef\xbb\xbf)?(?:\s+|<\?xml[^>]*\?>|<\?[^>]*\?>|<!--.*?-->|<!doctype\s+svg[^>]*>)*", re.DOTALL
)


def _is_svg(head: bytes) -> bool:
    """An SVG document: its root element is ``<svg`` (an HTML page that embeds one is not)."""
    lowered = head.lower()
    prologue = _SVG_PROLOGUE.match(lowered)
    rest = lowered[prologue.end() if prologue else 0 :]
    return rest.startswith(b"<svg") and rest[4:5] in {b" ", b">", b"\t", b"\n", b"\r", b"/"}


_MAGIC: list[tuple[str, Callable[[bytes], bool]]] = [
    ("image/png", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n")),
    ("image/jpeg", lambda b: b.startswith(b"\xff\xd8\xff")),
    ("image/webp", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP"),
    ("image/avif", lambda b: b[4:8] == b"ftyp" and b[8:12] in {b"avif", b"avis"}),
    ("image/svg+xml", lambda b: _is_svg(b[:4096])),
]
_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/avif": ".avif",
    "image/svg+xml": ".svg",
}


def sniff_image_type(head: bytes) -> str | None:
    """Return the image MIME type told by a file's first bytes, or None."""
    for mime, test in _MAGIC:
        if test(head):
            return mime
    return None


def extension_for(mime: str | None) -> str:
    """Return the file extension for an image MIME type (``.bin`` for anything else)."""
    return _EXTENSIONS.get((mime or "").split(";")[0].strip(), ".bin")


def allowed_mimes(op: Operation | str) -> tuple[str, ...]:
    """Return the file types an upload operation accepts, from the spec."""
    if isinstance(op, str):
        op = get_operation(op)
    schema = op.body.get("file", {})
    return tuple(o["contentMediaType"] for o in schema.get("anyOf", []) if "contentMediaType" in o)


@dataclass(frozen=True)
class Upload:
    """A checked upload: its file name, bytes and sniffed MIME type."""

    filename: str
    content: bytes
    mime: str


def read_upload(field_name: str, file: FileInput, allowed: tuple[str, ...]) -> Upload:
    """Read an upload from a path, bytes or a binary file object, and check it before sending."""
    if isinstance(file, (bytes, bytearray)):
        content, filename = bytes(file), "upload"
    elif isinstance(file, (str, os.PathLike)):
        path = Path(file)
        if not path.is_file():
            raise BloomInputError(field_name, f"no such file: {str(path)!r}")
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise BloomInputError(field_name, f"{path.name} is {size} bytes; Bloom accepts at most 10 MB")
        content, filename = path.read_bytes(), path.name
    elif hasattr(file, "read"):
        if isinstance(file, io.TextIOBase):
            raise BloomInputError(
                field_name, "file objects must be opened in binary mode ('rb'), not text mode"
            )
        try:
            content = file.read(MAX_UPLOAD_BYTES + 1)
        except UnicodeDecodeError:
            raise BloomInputError(field_name, "file objects must be opened in binary mode ('rb')") from None
        if not isinstance(content, (bytes, bytearray)):
            raise BloomInputError(field_name, "file objects must be opened in binary mode ('rb')")
        content = bytes(content)
        filename = Path(str(getattr(file, "name", "upload"))).name or "upload"
    else:
        raise BloomInputError(field_name, f"must be a path, bytes or a binary file object; got {type(file)}")
    if len(content) > MAX_UPLOAD_BYTES:
        raise BloomInputError(field_name, f"{filename} is over 10 MB ({len(content)}+ bytes)")
    if not content:
        raise BloomInputError(field_name, f"{filename} is empty")
    mime = sniff_image_type(content[:4096])
    if mime not in allowed:
        kinds = ", ".join(m.split("/")[1].upper() for m in allowed)
        raise BloomInputError(
            field_name, f"{filename} is {'not an image' if mime is None else mime}; Bloom accepts {kinds}"
        )
    if filename == "upload":
        filename += extension_for(mime)
    return Upload(filename, content, mime)


@dataclass(frozen=True)
class Download:
    """An opened image URL, whichever HTTP library fetched it.

    ``url`` is the final URL (after Bloom's redirect), ``headers`` are case-insensitive. ``chunks(size)``
    yields the decoded body as it arrives (each read returns what one read from the network brings,
    at most ``size`` bytes) and raises only :class:`~airflow_provider_bloom.exceptions.BloomDownloadError`
    (``permanent=False``) when the body breaks off or its Content-Encoding cannot be decoded.
    """

    url: str
    status: int
    headers: Mapping[str, str]
    _read: Callable[[int], Iterator[bytes]] = field(repr=False)

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        """Yield the decoded body in chunks of at most ``size`` bytes."""
        return self._read(size)


__all__ = [
    "Download",
    "FileInput",
    "Upload",
    "allowed_mimes",
    "extension_for",
    "read_upload",
    "sniff_image_type",
]
