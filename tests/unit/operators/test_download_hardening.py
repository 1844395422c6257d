"""Downloads from a storage host that compresses, lies about types or dribbles bytes.

The emulator's signed download URLs point at a scripted loopback server
(``download_base_url``); the operator runs its ``execute`` directly.
"""

from __future__ import annotations

import gzip
import time

import pytest
from airflow.exceptions import AirflowFailException

from airflow_provider_bloom.emulator.png import make_png
from airflow_provider_bloom.operators.download import BloomDownloadError, BloomDownloadImagesOperator
from tests.helpers import completed_images
from tests.hostile_server import Answer, HostileServer


@pytest.fixture
def image(bloom_conn, hostile: HostileServer):
    (record,) = completed_images(1)
    bloom_conn.configure(download_base_url=hostile.root)
    return record


def download(image, tmp_path, **kwargs):
    op = BloomDownloadImagesOperator(task_id="d", image_ids=image, destination=str(tmp_path), **kwargs)
    return op.execute({})


def test_a_gzip_encoded_file_is_measured_after_decoding(image, hostile, tmp_path):
    png = make_png(300, 200)
    hostile.script(Answer(200, gzip.compress(png), {"Content-Type": "image/png", "Content-Encoding": "gzip"}))
    (path,) = download(image, tmp_path)
    assert path.endswith(f"{image['id']}.png")
    assert (tmp_path / f"{image['id']}.png").read_bytes() == png
    assert len(hostile.seen) == 1


def test_a_gzip_body_over_the_cap_fails_at_once_on_the_decoded_size(image, hostile, tmp_path):
    png = make_png(64, 64) + b"\0" * 200_000  # compresses to a few hundred bytes
    encoded = gzip.compress(png)
    assert len(encoded) < 5_000
    hostile.script(Answer(200, encoded, {"Content-Type": "image/png", "Content-Encoding": "gzip"}))
    with pytest.raises(AirflowFailException, match="over the cap of 100000 bytes"):  # no Airflow retry
        download(image, tmp_path, max_bytes=100_000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "page",
    [
        b"<!DOCTYPE html><html><body><svg width='1' height='1'></svg>Sign in</body></html>",
        b"<html><head><title>Error</title></head><body><svg/></body></html>",
        b"<?xml version='1.0'?><html><svg></svg></html>",
    ],
)
def test_an_html_page_holding_an_svg_is_not_saved_as_svg(image, hostile, tmp_path, page):
    hostile.script(Answer(200, page, {"Content-Type": "application/octet-stream"}))
    with pytest.raises(AirflowFailException, match="not a PNG, JPEG, WebP, AVIF or SVG image"):
        download(image, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_real_svg_served_as_octet_stream_is_saved_as_svg(image, hostile, tmp_path):
    svg = (
        b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-8"?>\n<!-- made by Bloom -->\n'
        b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
        b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>'
    )
    hostile.script(Answer(200, svg, {"Content-Type": "application/octet-stream"}))
    (path,) = download(image, tmp_path)
    assert path.endswith(".svg") and (tmp_path / f"{image['id']}.svg").read_bytes() == svg


def test_a_dribbling_server_cannot_hold_the_slot_past_download_timeout(image, hostile, tmp_path):
    png = make_png(64, 64) + b"\0" * 4000
    # 50 bytes every 0.1 s: over 8 s in all, each read well within the read timeout.
    hostile.script(Answer(200, png, {"Content-Type": "image/png"}, chunk=50, dribble_seconds=0.1))
    started = time.monotonic()
    with pytest.raises(BloomDownloadError, match=r"took longer than download_timeout=1s"):
        download(image, tmp_path, download_timeout=1)
    assert time.monotonic() - started < 5  # gave up near the 1 s deadline, not after the 8 s body
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "10"])
def test_download_timeout_is_checked(bad, tmp_path):
    from airflow_provider_bloom.exceptions import BloomInputError

    with pytest.raises(BloomInputError) as info:
        BloomDownloadImagesOperator(
            task_id="d", image_ids=[], destination=str(tmp_path), download_timeout=bad
        )
    assert info.value.field == "download_timeout"


def test_the_obvious_ext_spelling_writes_one_dot(image, hostile, tmp_path):
    png = make_png(32, 32)
    hostile.script(Answer(200, png, {"Content-Type": "image/png"}))
    (path,) = download(image, tmp_path, name_template="{image_id}.{ext}")
    assert path.endswith(f"/{image['id']}.png")
    assert [p.name for p in tmp_path.iterdir()] == [f"{image['id']}.png"]
