"""Recognise uploaded image bytes by their magic numbers and read their pixel size."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

DEFAULT_SIZE = (1024, 1024)


@dataclass(frozen=True)
class Sniffed:
    mime_type: str
    width: int
    height: int


def sniff(data: bytes) -> Sniffed | None:
    """The image type and size of ``data``; ``None`` when it is not PNG/JPEG/WebP/AVIF/SVG."""
    for detect in (_png, _jpeg, _webp, _avif, _svg):
        found = detect(data)
        if found is not None:
            return found
    return None


def _png(data: bytes) -> Sniffed | None:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    if len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return Sniffed("image/png", width, height)
    return Sniffed("image/png", *DEFAULT_SIZE)


def _jpeg(data: bytes) -> Sniffed | None:
    if not data.startswith(b"\xff\xd8\xff"):
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return Sniffed("image/jpeg", width, height)
        i += 2 + length
    return Sniffed("image/jpeg", *DEFAULT_SIZE)


def _webp(data: bytes) -> Sniffed | None:
    if len(data) < 16 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return Sniffed("image/webp", width, height)
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return Sniffed("image/webp", width & 0x3FFF, height & 0x3FFF)
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return Sniffed("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    return Sniffed("image/webp", *DEFAULT_SIZE)


def _avif(data: bytes) -> Sniffed | None:
    if len(data) < 12 or data[4:8] != b"ftyp" or data[8:12] not in (b"avif", b"avis"):
        return None
    at = data.find(b"ispe")
    if at != -1 and len(data) >= at + 16:
        width, height = struct.unpack(">II", data[at + 8 : at + 16])
        return Sniffed("image/avif", width, height)
    return Sniffed("image/avif", *DEFAULT_SIZE)


_SVG_TAG = re.compile(rb"<svg\b[^>]*>", re.IGNORECASE | re.DOTALL)
_SVG_SIZE = re.compile(rb'\b(width|height)\s*=\s*["\']\s*([0-9.]+)', re.IGNORECASE)


def _svg(data: bytes) -> Sniffed | None:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not (head.startswith(b"<svg") or head.startswith(b"<?xml") or head.startswith(b"<!--")):
        return None
    tag = _SVG_TAG.search(head)
    if tag is None:
        return None
    sizes = {name.lower(): value for name, value in _SVG_SIZE.findall(tag.group(0))}
    try:
        width = round(float(sizes[b"width"]))
        height = round(float(sizes[b"height"]))
    except (KeyError, ValueError):
        width, height = DEFAULT_SIZE
    return Sniffed("image/svg+xml", width, height)
