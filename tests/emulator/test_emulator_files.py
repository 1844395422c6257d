"""Image files (real PNG/SVG bytes, signed expiring URLs) and uploads (multipart, URL, signed)."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID, DOWNLOAD_FAILS_MARKER
from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.emulator.server import EmulatorServer

from ._helpers import completed_image, data, error, png_header, wait_all

BRAND = {"brandSessionId": DEFAULT_BRAND_ID}


def _download(url: str) -> httpx.Response:
    """Follow ``/img/{id}`` -> signed URL without sending credentials."""
    short = httpx.get(url, timeout=10)
    assert short.status_code == 302, short.text
    assert "/_files/" in short.headers["location"]
    return httpx.get(short.headers["location"], timeout=10)


@pytest.mark.parametrize(
    ("ratio", "size", "expected"),
    [
        ("1:1", "2K", (2048, 2048)),
        ("16:9", "2K", (2048, 1152)),
        ("9:16", "4K", (2304, 4096)),
        ("21:9", "2K", (2048, 878)),
    ],
)
def test_completed_images_are_real_pngs_of_their_size(
    api: httpx.Client, ratio: str, size: str, expected: tuple[int, int]
) -> None:
    image = completed_image(api, aspectRatio=ratio, imageSize=size)
    assert (image["width"], image["height"]) == expected
    file = _download(image["imageUrl"])
    assert file.headers["content-type"] == "image/png"
    assert int(file.headers["content-length"]) == len(file.content)
    assert png_header(file.content) == (*expected, 2)  # RGB


def test_remove_background_is_rgba_and_vectorize_is_svg(api: httpx.Client) -> None:
    source = completed_image(api, aspectRatio="3:2")
    cutout = data(api.post(f"/images/{source['id']}/remove-background", json=BRAND), 202)["id"]
    vector = data(api.post(f"/images/{source['id']}/vectorize", json=BRAND), 202)["id"]
    by_id = {i["id"]: i for i in wait_all(api, [cutout, vector])}
    png = _download(by_id[cutout]["imageUrl"])
    assert png_header(png.content) == (2048, 1365, 6)  # RGBA
    svg = _download(by_id[vector]["imageUrl"])
    assert svg.headers["content-type"] == "image/svg+xml"
    assert re.search(rb'<svg[^>]* width="2048" height="1365"', svg.content)


def test_files_of_unfinished_or_unknown_images_are_404(
    api: httpx.Client, bloom_emulator: EmulatorServer
) -> None:
    bloom_emulator.configure(generation_seconds=30)
    pending = data(api.post("/images/generations", json={"prompt": "p", **BRAND}), 202)["ids"][0]
    assert httpx.get(f"{bloom_emulator.root_url}/img/{pending}").status_code == 404
    assert httpx.get(f"{bloom_emulator.root_url}/img/nothing-here").status_code == 404


def test_signed_urls_expire_and_resist_tampering(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    image = completed_image(api)
    bloom_emulator.configure(signed_url_ttl_seconds=0.3)
    location = httpx.get(image["imageUrl"]).headers["location"]
    assert httpx.get(location).status_code == 200
    tampered = location.replace("sig=", "sig=0")
    error(httpx.get(tampered), 403, "INVALID_SIGNATURE")
    time.sleep(0.35)
    error(httpx.get(location), 403, "SIGNATURE_EXPIRED")


def test_include_urls_gives_signed_download_urls(api: httpx.Client) -> None:
    image = completed_image(api)
    listed = data(api.get("/images", params={"ids": image["id"], "includeUrls": "true"}))["images"][0]
    assert "/_files/" in listed["imageUrl"] and "sig=" in listed["imageUrl"]
    assert png_header(httpx.get(listed["imageUrl"]).content)[:2] == (2048, 2048)
    plain = data(api.get("/images", params={"ids": image["id"]}))["images"][0]
    assert plain["imageUrl"].endswith(f"/img/{image['id']}")


def test_redirect_to_another_host_and_credential_counting(
    api: httpx.Client, bloom_emulator: EmulatorServer, bloom_api_key: str
) -> None:
    image = completed_image(api)
    bloom_emulator.configure(download_base_url=f"http://localhost:{bloom_emulator.port}")
    short = httpx.get(image["imageUrl"])
    assert short.headers["location"].startswith(f"http://localhost:{bloom_emulator.port}/_files/")
    assert httpx.get(short.headers["location"]).status_code == 200
    # A careless client that follows the redirect with its key leaks it to the download host:
    leaky = httpx.get(image["imageUrl"], headers={"x-api-key": bloom_api_key}, follow_redirects=True)
    assert leaky.status_code == 200
    seen = bloom_emulator.requests()
    assert seen["file_requests"] == 2 and seen["file_requests_with_credentials"] == 1
    assert seen["redirect_requests"] == 2 and seen["redirect_requests_with_credentials"] == 1


def _upload(
    api: httpx.Client, content: bytes, brand: str = DEFAULT_BRAND_ID, name: str = "a.png"
) -> httpx.Response:
    return api.post("/images/uploads/file", files={"file": (name, content)}, data={"brandSessionId": brand})


def test_multipart_upload_dedupes_identical_bytes(api: httpx.Client) -> None:
    png = make_png(640, 480)
    first = data(_upload(api, png))
    assert (first["existing"], first["width"], first["height"], first["mimeType"]) == (
        False,
        640,
        480,
        "image/png",
    )
    again = data(_upload(api, png, name="other-name.png"))
    assert again["existing"] is True and again["id"] == first["id"]
    other = data(_upload(api, make_png(640, 481)))
    assert other["existing"] is False and other["id"] != first["id"]
    stored = httpx.get(first["imageUrl"], follow_redirects=True)
    assert stored.content == png
    record = data(api.get(f"/images/{first['id']}"))
    assert (record["source"], record["status"], record["aspectRatio"]) == ("uploaded", None, "4:3")
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF\x00" + b"\x00" * 9 + b"\xff\xc0\x00\x11\x08\x02\x00\x03\x00"
    assert data(_upload(api, jpeg, name="x.jpg"))["mimeType"] == "image/jpeg"
    assert (data(_upload(api, jpeg + b"\x00"))["width"], data(_upload(api, jpeg + b"\x00"))["height"]) == (
        768,
        512,
    )


def test_upload_rejections(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    error(_upload(api, b"GIF89a" + b"\x00" * 20, name="x.gif"), 400, "UNSUPPORTED_FORMAT")
    error(_upload(api, b"<svg width='1' height='1'/>", name="x.svg"), 400, "UNSUPPORTED_FORMAT")
    bloom_emulator.configure(max_upload_bytes=1000)
    error(_upload(api, make_png(64, 64) + b"\x00" * 1000), 400, "FILE_TOO_LARGE")
    error(_upload(api, make_png(8, 8), brand="11111111-1111-4111-8111-111111111111"), 422, "BRAND_NOT_FOUND")
    error(api.post("/images/uploads/file", data={"brandSessionId": DEFAULT_BRAND_ID}), 400, "BAD_REQUEST")


def test_ten_megabyte_limit(api: httpx.Client) -> None:
    big = make_png(16, 16) + b"\x00" * (10 * 1024 * 1024)
    error(_upload(api, big), 400, "FILE_TOO_LARGE")


def test_upload_by_url_stays_offline(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    url = "https://cdn.example.com/photos/hero.png"
    first = data(api.post("/images/uploads", json={"imageUrl": url, **BRAND}))
    assert first["existing"] is False and first["mimeType"] == "image/png"
    assert data(api.post("/images/uploads", json={"imageUrl": url, **BRAND}))["id"] == first["id"]
    assert data(api.post("/images/uploads", json={"imageUrl": url + "?v=2", **BRAND}))["id"] != first["id"]
    error(
        api.post(
            "/images/uploads", json={"imageUrl": f"https://x.example/{DOWNLOAD_FAILS_MARKER}.png", **BRAND}
        ),
        400,
        "DOWNLOAD_FAILED",
    )
    error(
        api.post("/images/uploads", json={"imageUrl": "ftp://x.example/a.png", **BRAND}), 400, "INVALID_URL"
    )
    error(api.post("/images/uploads", json={"imageUrl": "not a url", **BRAND}), 400, "INVALID_URL")
    missing = {"imageUrl": url, "brandSessionId": "11111111-1111-4111-8111-111111111111"}
    error(api.post("/images/uploads", json=missing), 404, "BRAND_NOT_FOUND")


def test_upload_by_loopback_url_reads_real_bytes(api: httpx.Client, bloom_emulator: EmulatorServer) -> None:
    image = completed_image(api, aspectRatio="3:4")
    own = data(api.post("/images/uploads", json={"imageUrl": image["imageUrl"], **BRAND}))
    assert (own["width"], own["height"]) == (1536, 2048)
    # via "localhost": fetched over HTTP, following the redirect to the signed URL
    over_http = f"http://localhost:{bloom_emulator.port}/img/{image['id']}"
    fetched = data(api.post("/images/uploads", json={"imageUrl": over_http, **BRAND}))
    assert fetched["id"] == own["id"] and fetched["existing"] is True
    gone = f"http://localhost:{bloom_emulator.port}/img/11111111-1111-4111-8111-111111111111"
    error(api.post("/images/uploads", json={"imageUrl": gone, **BRAND}), 400, "DOWNLOAD_FAILED")


def test_signed_uploads_need_a_single_use_token(bloom_emulator: EmulatorServer, api: httpx.Client) -> None:
    token = bloom_emulator.mint_upload_token("image", DEFAULT_BRAND_ID)
    url = f"{bloom_emulator.base_url}/images/uploads/file/signed/{token}"
    uploaded = httpx.post(url, files={"file": ("a.png", make_png(100, 100))})  # no credentials
    assert uploaded.status_code == 200 and uploaded.json()["data"]["existing"] is False
    error(httpx.post(url, files={"file": ("a.png", make_png(100, 100))}), 401, "INVALID_UPLOAD_TOKEN")
    logo_token = bloom_emulator.mint_upload_token("logo", DEFAULT_BRAND_ID)
    wrong_kind = f"{bloom_emulator.base_url}/images/uploads/file/signed/{logo_token}"
    error(httpx.post(wrong_kind, files={"file": ("a.png", make_png(10, 10))}), 401, "INVALID_UPLOAD_TOKEN")
    assert bloom_emulator.requests()["by_key"] == {}  # signed uploads carry no key


def test_logo_uploads(bloom_emulator: EmulatorServer, api: httpx.Client) -> None:
    svg = (
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'
    )
    token = bloom_emulator.mint_upload_token("logo", DEFAULT_BRAND_ID)
    url = f"{bloom_emulator.base_url}/brands/{DEFAULT_BRAND_ID}/logo/file/signed/{token}"
    assert httpx.put(url, files={"file": ("logo.svg", svg)}).status_code == 202
    brand = data(api.get(f"/brands/{DEFAULT_BRAND_ID}", params={"wait": "true", "timeout": 5}))
    logo = httpx.get(brand["logoUrl"], follow_redirects=True)
    assert logo.headers["content-type"] == "image/svg+xml" and logo.content == svg
    error(httpx.put(url, files={"file": ("logo.svg", svg)}), 401, "INVALID_UPLOAD_TOKEN")
    response = api.put(f"/brands/{DEFAULT_BRAND_ID}/logo/file", files={"file": ("l.txt", b"hello")})
    error(response, 400, "INVALID_LOGO")
    ok = api.put(f"/brands/{DEFAULT_BRAND_ID}/logo/file", files={"file": ("l.png", make_png(32, 32))})
    assert data(ok, 202)["status"] in ("analyzing", "ready")
