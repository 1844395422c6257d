"""Pure-Python parts: config patches, sizes, the store on a fake clock, rate limiter, PNG/sniffing, faults."""

from __future__ import annotations

import struct
import zlib

import pytest

from airflow_provider_bloom.emulator import DEFAULT_BRAND_ID, EmulatorConfig
from airflow_provider_bloom.emulator.auth import RateLimiter
from airflow_provider_bloom.emulator.errors import EmulatorError
from airflow_provider_bloom.emulator.faults import FaultBook, FaultRule
from airflow_provider_bloom.emulator.media import sniff
from airflow_provider_bloom.emulator.png import make_png, make_svg
from airflow_provider_bloom.emulator.spec import is_uri, match, operations
from airflow_provider_bloom.emulator.state import Store
from airflow_provider_bloom.emulator.stored import dimensions, iso, nearest_aspect_ratio


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_config_patches_are_checked() -> None:
    config = EmulatorConfig()
    patched = config.updated(
        {"generation_seconds": 1, "rate_limit_per_minute": None, "error_envelope": "nested"}
    )
    assert patched.generation_seconds == 1.0 and isinstance(patched.generation_seconds, float)
    assert patched.rate_limit_per_minute is None and config.rate_limit_per_minute == 120
    with pytest.raises(ValueError, match="unknown"):
        config.updated({"nope": 1})
    with pytest.raises(ValueError, match="error_envelope"):
        config.updated({"error_envelope": "xml"})
    with pytest.raises(ValueError, match="valid_keys"):
        config.updated({"valid_keys": "bloom_sk_a"})
    with pytest.raises(ValueError, match="negative"):
        config.updated({"brand_ready_seconds": -1})


def test_dimensions_and_ratios() -> None:
    assert dimensions("1:1", "2K") == (2048, 2048)
    assert dimensions("16:9", "2K") == (2048, 1152)
    assert dimensions("9:16", "2K") == (1152, 2048)
    assert dimensions("4:5", "4K") == (3277, 4096)
    assert nearest_aspect_ratio(1920, 1080) == "16:9"
    assert nearest_aspect_ratio(1000, 333) is None
    assert iso(0) == "1970-01-01T00:00:00.000Z"


def test_store_status_follows_the_clock() -> None:
    clock = Clock()
    config = EmulatorConfig(generation_seconds=10, pending_fraction=0.3, brand_ready_seconds=5, seed=1)
    store = Store(lambda: config, clock)
    (image,) = store.generate(
        brand_id=DEFAULT_BRAND_ID,
        prompt="p",
        aspect_ratio="1:1",
        image_size="2K",
        model=None,
        variant_count=1,
        reference_ids=[],
    )
    assert image.status(clock.now) == "pending"
    clock.now += 3
    assert image.status(clock.now) == "generating" and not image.is_terminal(clock.now)
    clock.now += 7
    assert image.status(clock.now) == "completed" and image.is_terminal(clock.now)
    brand = store.create_brand("https://acme.example", None, None, True)
    assert brand.status(clock.now) == "analyzing"
    with pytest.raises(EmulatorError) as raised:
        store.ready_brand(brand.id)
    assert (raised.value.status, raised.value.code) == (409, "BRAND_NOT_READY")
    clock.now += 5
    assert store.ready_brand(brand.id).status(clock.now) == "ready"
    assert store.workspaces[None].balance == config.initial_credits - 1


def test_seeded_store_is_deterministic() -> None:
    config = EmulatorConfig(seed=42)
    first, second = Store(lambda: config, Clock()), Store(lambda: config, Clock())
    a = first.create_brand("https://a.example", None, None, False)
    b = second.create_brand("https://a.example", None, None, False)
    assert a.id == b.id


def test_ledger() -> None:
    config = EmulatorConfig(initial_credits=2)
    store = Store(lambda: config, Clock())
    store.charge(None, 2)
    with pytest.raises(EmulatorError) as raised:
        store.charge(None, 1)
    assert raised.value.status == 402 and raised.value.data["action_url"]
    store.set_credits(None, 0, unlimited=True)
    store.charge(None, 100)
    assert store.workspaces[None].balance == 0


def test_rate_limiter_slides() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    for _ in range(3):
        assert limiter.hit("k", 3, 60) is None
        clock.now += 10
    assert limiter.hit("k", 3, 60) == pytest.approx(30)
    clock.now += 30  # the first hit (t=0) leaves the window at t=60
    assert limiter.hit("k", 3, 60) is None
    assert limiter.hit("k", 3, 60) is not None
    assert limiter.hit("other", 3, 60) is None


def _png_chunks(data: bytes) -> dict[bytes, bytes]:
    chunks, at = {}, 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        payload = data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + payload)
        chunks[kind] = chunks.get(kind, b"") + payload
        at += 12 + length
    return chunks


@pytest.mark.parametrize(("alpha", "bpp"), [(False, 3), (True, 4)])
def test_png_writer_is_a_valid_png(alpha: bool, bpp: int) -> None:
    data = make_png(33, 20, alpha)
    chunks = _png_chunks(data)
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (width, height, depth, colour) == (33, 20, 8, 6 if alpha else 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert len(raw) == height * (1 + width * bpp)
    assert b"IEND" in chunks
    assert sniff(data) is not None and (sniff(data).width, sniff(data).height) == (33, 20)  # type: ignore[union-attr]


def test_sniffing() -> None:
    svg = sniff(make_svg(300, 200))
    assert svg is not None and (svg.mime_type, svg.width, svg.height) == ("image/svg+xml", 300, 200)
    webp = (
        b"RIFF\x00\x00\x00\x00WEBPVP8X"
        + b"\x00" * 8
        + (99).to_bytes(3, "little")
        + (49).to_bytes(3, "little")
    )
    found = sniff(webp)
    assert found is not None and (found.mime_type, found.width, found.height) == ("image/webp", 100, 50)
    avif = (
        b"\x00\x00\x00\x1cftypavif"
        + b"\x00" * 8
        + b"\x00\x00\x00\x14ispe\x00\x00\x00\x00"
        + struct.pack(">II", 7, 9)
    )
    found = sniff(avif)
    assert found is not None and (found.mime_type, found.width, found.height) == ("image/avif", 7, 9)
    assert sniff(b"GIF89a....") is None and sniff(b"") is None


def test_fault_book_counts_down_in_order() -> None:
    book = FaultBook()
    book.add(FaultRule("images.get", "status", count=2, status=503))
    book.add(FaultRule("*", "delay", delay_seconds=0.1))
    assert book.take("account.get") is not None and book.take("account.get") is None  # the wildcard, once
    assert book.take("images.get") is not None and book.take("images.get") is not None
    assert book.take("images.get") is None and book.pending() == []
    with pytest.raises(ValueError):
        FaultRule("images.get", "status").check(frozenset({"images.get"}))


def test_spec_router_and_formats() -> None:
    assert len(operations()) == 23
    search = match("POST", "/images/search")
    assert search is not None and search.operation is not None
    assert search.operation.operation_id == "images.search"
    literal_wins = match("GET", "/images/search")
    assert literal_wins is not None and literal_wins.operation is None and literal_wins.allowed == ("POST",)
    found = match("PUT", "/brands/b/logo/file/signed/t")
    assert found is not None and found.path_params == {"id": "b", "token": "t"}
    assert match("GET", "/unknown") is None
    assert is_uri("https://acme.example/a?b#c") and is_uri("urn:isbn:123")
    assert not is_uri("acme.example") and not is_uri("http://a b") and not is_uri("http://x/%zz")
