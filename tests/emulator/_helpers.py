"""Helpers shared by the emulator tests."""

from __future__ import annotations

import struct
from typing import Any

import httpx

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID


def data(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert a flat Bloom error and return its body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def generate(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"prompt": "a lighthouse at dusk", "brandSessionId": DEFAULT_BRAND_ID, **fields}
    result: dict[str, Any] = data(api.post("/images/generations", json=body), 202)
    return result


def wait_all(api: httpx.Client, ids: list[str], timeout: int = 10) -> list[dict[str, Any]]:
    page = data(api.get("/images", params={"ids": ",".join(ids), "wait": "true", "timeout": timeout}))
    images: list[dict[str, Any]] = page["images"]
    return images


def completed_image(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    ids = generate(api, **fields)["ids"]
    (image,) = wait_all(api, ids)
    assert image["status"] == "completed"
    return image


def png_header(content: bytes) -> tuple[int, int, int]:
    """(width, height, colour type) from a PNG's IHDR."""
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    assert content[12:16] == b"IHDR"
    width, height, _depth, colour_type = struct.unpack(">IIBB", content[16:26])
    return width, height, colour_type
