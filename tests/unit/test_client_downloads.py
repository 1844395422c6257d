"""``BloomClient.open_download`` decodes a compressed body itself, at most ``size`` bytes at a time.

Over HTTP: the emulator's image URL redirects to a scripted loopback storage host that answers with
each content coding a server may send.
"""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import pytest

from airflow_provider_bloom.exceptions import BloomDownloadError
from airflow_provider_bloom.hooks.bloom import BloomHook
from tests.helpers import completed_images
from tests.hostile_server import Answer, HostileServer

BODY = bytes(range(256)) * 400  # 100 KiB


@pytest.fixture
def image_url(bloom_conn, hostile: HostileServer) -> str:
    (record,) = completed_images(1)
    bloom_conn.configure(download_base_url=hostile.root)
    return str(record["imageUrl"])


def read(url: str, size: int = 4096) -> list[bytes]:
    with BloomHook().client.open_download(url) as download:
        return list(download.chunks(size))


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)),
        ("gzip", gzip.compress(BODY[:1000]) + gzip.compress(BODY[1000:])),  # two members
        ("deflate", zlib.compress(BODY)),
        ("deflate", raw_deflate(BODY)),  # without zlib's header, as some servers send it
        ("identity", BODY),
    ],
)
def test_every_coding_comes_out_whole_in_small_pieces(image_url, hostile, coding, encoded):
    hostile.script(
        Answer(200, encoded, {"Content-Type": "image/png", "Content-Encoding": coding}, chunk=1000)
    )
    chunks = read(image_url, size=4096)
    assert b"".join(chunks) == BODY and max(map(len, chunks)) <= 4096
    assert hostile.seen[-1].headers.get("Accept-Encoding") == "gzip, deflate"


@pytest.mark.parametrize(
    ("coding", "encoded"),
    [
        ("gzip", gzip.compress(BODY)[:-100]),  # ends before its end marker
        ("gzip", b"not gzip at all"),
        ("br", b"\x0b\x02\x80hello\x03"),  # a coding never asked for
    ],
)
def test_a_body_that_cannot_be_decoded_is_a_transient_download_error(image_url, hostile, coding, encoded):
    hostile.script(Answer(200, encoded, {"Content-Type": "image/png", "Content-Encoding": coding}))
    with pytest.raises(BloomDownloadError, match=f"the server's {coding} body could not be decoded") as info:
        read(image_url)
    assert info.value.permanent is False


def test_a_gzip_bomb_is_inflated_only_as_far_as_it_is_read(image_url, hostile):
    bomb = gzip.compress(b"\0" * 50_000_000)  # about 50 KB on the wire
    hostile.script(Answer(200, bomb, {"Content-Type": "image/png", "Content-Encoding": "gzip"}))
    with BloomHook().client.open_download(image_url) as download:
        tracemalloc.start()
        try:
            first = next(download.chunks(64 * 1024))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert len(first) == 64 * 1024
    assert peak < 5_000_000, f"reading one 64 KiB piece took {peak:,} bytes"
