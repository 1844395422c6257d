"""BloomDownloadImagesOperator under dag.test(): real files through Bloom's redirect (the key never leaves
Bloom's origin), atomic writes, the size cap, Content-Type and magic-byte checks, skip/overwrite,
asset events.

A tiny loopback HTTP server stands in for a misbehaving storage host (wrong Content-Type, wrong bytes):
the emulator's signed download URLs are pointed at it with ``download_base_url``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from airflow.sdk import ObjectStoragePath

from airflow_provider_bloom.emulator.png import make_png, make_svg
from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator, render_name
from tests.helpers import bloom_dag, completed_images, conn_json, free_port, png_size, serving, svg_size

DS = "{{ ds }}"


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".part")]


@pytest.fixture
def storage_host() -> Iterator[tuple[str, dict[str, tuple[str, bytes]]]]:
    """A loopback 'storage host' answering ``/_files/{id}`` with ``answers[id] = (content_type, body)``."""
    answers: dict[str, tuple[str, bytes]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            image_id = self.path.split("?")[0].rsplit("/", 1)[-1]
            content_type, body = answers.get(image_id, ("text/plain", b"no such file"))
            self.send_response(200 if image_id in answers else 404)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, answers


def test_downloads_real_png_and_svg_files_without_sending_the_key_elsewhere(
    bloom_conn, dag_run, tmp_path, request
):
    port = bloom_conn.base_url.split(":")[2].split("/")[0]
    bloom_conn.configure(download_base_url=f"http://localhost:{port}")  # another host name for the files
    square, wide = completed_images(1, aspect_ratio="1:1") + completed_images(1, aspect_ratio="16:9")
    hook = BloomHook()
    (vector,) = hook.wait_for_images([hook.vectorize_image(square["id"])["id"]], timeout=30)
    out_dir = tmp_path / "out"
    with bloom_dag(request.node.name) as dag:
        BloomDownloadImagesOperator(
            task_id="download",
            image_ids=[square, wide["id"], vector],
            destination=ObjectStoragePath(f"file://{out_dir}"),
            name_template=DS + "/{image_id}.png",
        )
    out = dag_run(dag)

    assert out.states["download"] == "success", out.errors
    paths = out.xcom("download")
    (day,) = [p.name for p in out_dir.iterdir()]
    expected = [f"{square['id']}.png", f"{wide['id']}.png", f"{vector['id']}.svg"]
    assert paths == [f"file://{out_dir}/{day}/{name}" for name in expected]
    assert png_size((out_dir / day / expected[0]).read_bytes()) == (square["width"], square["height"])
    assert (
        png_size((out_dir / day / expected[1]).read_bytes())
        == (wide["width"], wide["height"])
        == (2048, 1152)
    )
    assert svg_size((out_dir / day / expected[2]).read_bytes()) == (vector["width"], vector["height"])
    assert leftovers(tmp_path) == []
    seen = bloom_conn.requests()
    assert seen["file_requests"] == 3
    assert seen["file_requests_with_credentials"] == 0

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        events = (
            session.query(AssetModel.uri, AssetEvent.extra)
            .join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetEvent.source_dag_id == dag.dag_id)
            .all()
        )
    assert sorted(uri for uri, _ in events) == sorted(paths)
    assert {extra["bloom_image_id"] for _, extra in events} == {square["id"], wide["id"], vector["id"]}


def test_existing_files_are_kept_unless_overwrite(bloom_conn, dag_run, tmp_path, request):
    (image,) = completed_images(1)
    target = tmp_path / f"{image['id']}.png"
    target.write_bytes(b"an older file")
    with bloom_dag(request.node.name) as dag:
        keep = BloomDownloadImagesOperator(task_id="keep", image_ids=image, destination=str(tmp_path))
        replace = BloomDownloadImagesOperator(
            task_id="replace", image_ids=image, destination=str(tmp_path), overwrite=True, asset_alias=None
        )
        keep >> replace
    out = dag_run(dag)
    assert out.xcom("keep") == out.xcom("replace") == [f"file://{target}"]
    assert png_size(target.read_bytes()) == (image["width"], image["height"])
    assert bloom_conn.requests()["file_requests"] == 1  # 'keep' downloaded nothing


def test_bad_inputs_and_broken_downloads_never_leave_a_file(bloom_conn, dag_run, tmp_path, request):
    good, other = completed_images(2)
    (failed,) = completed_images(1, prompt="[content_safety] no")
    bloom_conn.configure(generation_seconds=600)
    pending = BloomHook().generate_images(prompt="slow")["ids"][0]
    bloom_conn.add_fault("files.download", "truncate")  # the first file download is cut in half
    dirs = {name: tmp_path / name for name in ("cap", "cut", "pending", "failed", "dupes", "traversal")}
    with bloom_dag(request.node.name) as dag:
        cut = BloomDownloadImagesOperator(task_id="cut", image_ids=good, destination=str(dirs["cut"]))
        cap = BloomDownloadImagesOperator(
            task_id="cap", image_ids=good, destination=str(dirs["cap"]), max_bytes=1000
        )
        cut >> cap
        BloomDownloadImagesOperator(
            task_id="pending", image_ids=[good, pending], destination=str(dirs["pending"])
        )
        BloomDownloadImagesOperator(task_id="failed", image_ids=failed["id"], destination=str(dirs["failed"]))
        BloomDownloadImagesOperator(
            task_id="missing", image_ids=str(uuid.uuid4()), destination=str(tmp_path / "m")
        )
        BloomDownloadImagesOperator(
            task_id="dupes", image_ids=[good, other], destination=str(dirs["dupes"]), name_template="same.png"
        )
        BloomDownloadImagesOperator(
            task_id="traversal",
            image_ids=good,
            destination=str(dirs["traversal"]),
            name_template="{{ '../' }}x",
        )
    out = dag_run(dag)

    assert out.states["cut"] == "success" and out.tries["cut"] == 2  # a broken transfer is retried...
    assert f"image {good['id']}: the download" in out.error("cut") and "broke off" in out.error("cut")
    assert png_size((dirs["cut"] / f"{good['id']}.png").read_bytes()) == (good["width"], good["height"])
    assert out.states["cap"] == "failed" and out.tries["cap"] == 1
    assert f"image {good['id']}: the file is over the cap of 1000 bytes" in out.error("cap")
    assert f"image {pending} is pending" in out.error(
        "pending"
    ) or f"image {pending} is generating" in out.error("pending")
    assert f"image {failed['id']} is failed (content_safety)" in out.error("failed")
    assert "was not found" in out.error("missing")
    assert "gives the same name 'same.png'" in out.error("dupes")
    assert "without '..'" in out.error("traversal")
    for task in ("pending", "failed", "missing", "dupes", "traversal"):
        assert out.states[task] == "failed" and out.tries[task] == 1, task
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written == [dirs["cut"] / f"{good['id']}.png"]  # nothing partial, nothing for failed tasks


def test_an_unreachable_storage_host_fails_naming_the_image_after_a_retry(
    bloom_conn, dag_run, tmp_path, monkeypatch, request
):
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, max_retries=0))
    (image,) = completed_images(1)
    closed = free_port()
    bloom_conn.configure(download_base_url=f"http://127.0.0.1:{closed}")
    with bloom_dag(request.node.name) as dag:
        BloomDownloadImagesOperator(task_id="download", image_ids=image, destination=str(tmp_path))
    out = dag_run(dag)
    assert out.states["download"] == "failed" and out.tries["download"] == 2  # transient: retried
    assert f"image {image['id']}: download (from 127.0.0.1:" in out.error("download")
    assert "failed: could not connect" in out.error("download")
    assert list(tmp_path.iterdir()) == []


def test_content_type_and_magic_bytes_must_agree(bloom_conn, dag_run, storage_host, tmp_path, request):
    host, answers = storage_host
    html, liar, plain = completed_images(3)
    answers[html["id"]] = ("text/html; charset=utf-8", b"<html><body>Access denied</body></html>")
    answers[liar["id"]] = ("image/png", make_svg(64, 64))
    answers[plain["id"]] = ("application/octet-stream", make_png(64, 48))
    bloom_conn.configure(download_base_url=host)
    with bloom_dag(request.node.name) as dag:
        for image in (html, liar, plain):
            BloomDownloadImagesOperator(
                task_id=f"t_{image['id'][:8]}", image_ids=image, destination=str(tmp_path)
            )
    out = dag_run(dag)

    html_task, liar_task, plain_task = (f"t_{i['id'][:8]}" for i in (html, liar, plain))
    assert f"image {html['id']}: the server sent 'text/html', not an image" in out.error(html_task)
    assert f"image {liar['id']}: Content-Type says image/png but the bytes are image/svg+xml" in out.error(
        liar_task
    )
    assert out.tries[html_task] == out.tries[liar_task] == 1
    assert out.states[plain_task] == "success"  # a generic type is judged by the bytes
    assert [p.name for p in tmp_path.iterdir()] == [f"{plain['id']}.png"]
    assert png_size((tmp_path / f"{plain['id']}.png").read_bytes()) == (64, 48)


def test_name_templates():
    image_id = str(uuid.uuid4())
    assert render_name("{image_id}{ext}", image_id, 0, ".png") == f"{image_id}.png"
    assert render_name("2024-01-01/{image_id}.png", image_id, 0, ".svg") == f"2024-01-01/{image_id}.svg"
    assert render_name("story_{index}", image_id, 3, ".png") == "story_3.png"
    assert render_name("{image_id}.final.webp", image_id, 0, ".png") == f"{image_id}.final.png"
    with pytest.raises(BloomInputError, match=r"unknown placeholder \{name\}"):
        BloomDownloadImagesOperator(
            task_id="t", image_ids=image_id, destination="/tmp", name_template="{name}.png"
        )
    with pytest.raises(BloomInputError, match="without '..'"):
        render_name("../{image_id}", image_id, 0, ".png")
    with pytest.raises(BloomInputError, match="max_bytes"):
        BloomDownloadImagesOperator(task_id="t", image_ids=image_id, destination="/tmp", max_bytes=0)
