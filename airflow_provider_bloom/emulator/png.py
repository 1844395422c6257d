"""Tiny PNG and SVG writers (zlib + struct, no Pillow), cached per size.

A generated image is a vertical gradient: every row is one colour, so with PNG's
``Sub`` filter a row is one pixel followed by zeros and a 4096x4096 file compresses
to a few tens of kilobytes while keeping the exact IHDR size.
"""

from __future__ import annotations

import functools
import struct
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_TOP = (0x1F, 0x6F, 0xEB)
_BOTTOM = (0xF5, 0xA6, 0x23)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _row_colour(y: int, height: int, alpha: bool) -> bytes:
    t = y / max(1, height - 1)
    rgb = bytes(round(a + (b - a) * t) for a, b in zip(_TOP, _BOTTOM, strict=True))
    if not alpha:
        return rgb
    # Transparent at the top and bottom, opaque in the middle: a "cut-out" band.
    return rgb + bytes([255 if 0.25 <= t <= 0.75 else 0])


def make_png(width: int, height: int, alpha: bool = False, tint: int = 0) -> bytes:
    """A valid 8-bit RGB (or RGBA) PNG of exactly ``width`` x ``height`` pixels."""
    if width <= 0 or height <= 0:
        raise ValueError("width and height must be positive")
    bpp = 4 if alpha else 3
    colour_type = 6 if alpha else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    zeros = bytes(bpp * (width - 1))
    compressor = zlib.compressobj(6)
    parts: list[bytes] = []
    for y in range(height):
        pixel = _row_colour(y, height, alpha)
        if tint:
            pixel = bytes((c + tint) % 256 for c in pixel[:3]) + pixel[3:]
        parts.append(compressor.compress(b"\x01" + pixel + zeros))
    parts.append(compressor.flush())
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


@functools.lru_cache(maxsize=64)
def cached_png(width: int, height: int, alpha: bool = False, tint: int = 0) -> bytes:
    return make_png(width, height, alpha, tint)


def make_svg(width: int, height: int) -> bytes:
    """A small SVG with explicit ``width``/``height`` attributes (what vectorize returns)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#1F6FEB"/>'
        f'<circle cx="{width / 2:g}" cy="{height / 2:g}" r="{min(width, height) / 3:g}" fill="#F5A623"/>'
        "</svg>"
    ).encode()
