"""The example DAGs parse, and each runs with dag.test() against the emulator (real HTTP on loopback)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_provider_bloom.emulator import (
    BRAND_FAIL_MARKER,
    BRAND_LOGO_REQUIRED_MARKER,
    CONTENT_SAFETY_MARKER,
    DEFAULT_BRAND_ID,
)
from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.testing import DagResult
from tests.e2e.checks import paid
from tests.e2e.stack import DAGS_FOLDER
from tests.helpers import load_module

EXAMPLES = {
    "bloom_content_pipeline",
    "bloom_brand_onboarding",
    "bloom_batch_collect",
    "bloom_catalogue_nightly",
    "bloom_review_pipeline",
}
PAID_IMAGE_OPERATIONS = ("images.generate", "images.resize", "images.removeBackground")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def dagbag() -> Any:
    """Parsed afresh per test: under dag.test() a run's conf sticks to the in-memory DAG's params."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    return DagBag(str(DAGS_FOLDER))


def import_example(name: str) -> ModuleType:
    return load_module(DAGS_FOLDER / f"{name}.py", f"example_{name}")


def test_every_example_parses_without_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXAMPLES
    for dag_id in EXAMPLES:
        dag = dagbag.get_dag(dag_id)
        assert "example" in dag.tags and dag.doc_md, dag_id
        assert dag.timetable.can_be_scheduled is False, (
            f"{dag_id} must not run on its own (it spends credits)"
        )


def test_content_pipeline_prompts_file_has_about_a_dozen_rows_covering_every_channel() -> None:
    pipeline = import_example("bloom_content_pipeline")
    rows = pipeline.read_prompts(pipeline.PROMPTS_FILE)
    assert 10 <= len(rows) <= 14
    channels = Counter(r["channel"] for r in rows)
    assert channels["story"] and channels["product"] and len(channels) >= 3
    assert all(r["aspect_ratio"] != "9:16" for r in rows if r["channel"] == "story")  # else nothing to resize


def run_content_pipeline(dag_run: Any, dagbag: Any, output: Path, **conf: Any) -> DagResult:
    return dag_run(dagbag.get_dag("bloom_content_pipeline"), run_conf={"output": str(output), **conf})


def manifest_of(result: DagResult) -> list[dict[str, Any]]:
    entries = result.xcom("write_manifest")
    assert isinstance(entries, list)
    manifest = Path(entries[0]["file"].removeprefix("file://")).parent / "manifest.json"
    assert json.loads(manifest.read_text()) == entries
    return entries


def test_content_pipeline_generates_post_processes_and_downloads(
    dagbag: Any, bloom_conn: Any, dag_run: Any, tmp_path: Path
) -> None:
    result = run_content_pipeline(dag_run, dagbag, tmp_path)

    assert result.state == "success"
    entries = manifest_of(result)
    assert len(entries) == 12 and all(e["status"] == "completed" for e in entries)
    by_channel = {
        channel: [e for e in entries if e["channel"] == channel] for channel in ("story", "product")
    }
    assert {(e["action"], e["aspect_ratio"]) for e in by_channel["story"]} == {("resize", "9:16")}
    assert {e["action"] for e in by_channel["product"]} == {"remove-background"}
    # Every derived image names its source, which the manifest's generation step made.
    for entry in [*by_channel["story"], *by_channel["product"]]:
        assert entry["source_image_id"] and entry["lineage"] == [
            {"operation": "images.generate", "image_id": entry["source_image_id"]}
        ]
    others = [e for e in entries if e["channel"] not in by_channel]
    assert others and all(e["action"] == "generation" and e["source_image_id"] is None for e in others)
    assert all(e["model"] == "pro" and e["prompt"] and e["credits"] for e in entries)
    # Real files, in one folder per run date, under the folder given by the `output` param.
    folders = {Path(e["file"].removeprefix("file://")).parent for e in entries}
    assert len(folders) == 1 and next(iter(folders)).parent == tmp_path
    # Each step's manifest is beside the images (rendered paths, not the templates' text).
    steps = sorted(p.name for p in (folders.pop() / ".bloom").glob("*.jsonl"))
    assert steps == ["download.jsonl", "generate.jsonl", "remove_backgrounds.jsonl", "resize_stories.jsonl"]
    for entry in entries:
        path = Path(entry["file"].removeprefix("file://"))
        assert path.read_bytes()[:8] == PNG and path.stat().st_size == entry["bytes"]
    # Exactly one paid request per planned image; the batch was waited for, not polled image by image.
    assert paid(bloom_conn) == {
        "total": 12 + 4 + 3,
        "images.generate": 12,
        "images.resize": 4,
        "images.removeBackground": 3,
    }
    operations = bloom_conn.requests()["by_operation"]
    # The balance is read by the credits sensor, by each batch step before it spends, and by the report.
    assert operations.get("images.get", 0) == 0 and operations["credits.get"] == 5
    # The run's report: what each task spent, by kind, equal to the emulator's balance drop.
    report = result.xcom("credits_report")
    assert report["by_task"] == {"generate": 14, "resize_stories": 4, "remove_backgrounds": 3}
    assert report["by_kind"] == {"generate": 14, "resize": 4, "remove_background": 3}
    balance = BloomHook().get_credits()["balance"]
    assert report["credits"] == 21 == report["balance_drop"] == report["balance_start"] - balance
    assert report["matches"] is True


def test_content_pipeline_updates_its_asset(
    dagbag: Any, bloom_conn: Any, dag_run: Any, tmp_path: Path
) -> None:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    result = run_content_pipeline(
        dag_run, dagbag, tmp_path, prompts_file=str(write_prompts(tmp_path, FEW_ROWS))
    )
    assert result.state == "success"
    with create_session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.name == "bloom_content_images", AssetEvent.source_run_id == result.run_id)
            .all()
        )
        assert len(events) == 1
        extra = events[0].extra
    assert extra["images"] == 2
    assert Path(extra["manifest"].removeprefix("file://")).is_file()


FEW_ROWS = [
    ("A lighthouse at dusk, long exposure", "1:1", "2K", "story"),
    (f"A forbidden scene {CONTENT_SAFETY_MARKER}", "4:5", "2K", "feed"),
    ("A banner of rolling hills at sunrise", "16:9", "2K", "banner"),
]


def write_prompts(folder: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path = folder / "prompts.csv"
    lines = ["prompt,aspect_ratio,image_size,channel", *(",".join(f'"{c}"' for c in row) for row in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_content_pipeline_reports_failed_images_and_skips_empty_channels(
    dagbag: Any, bloom_conn: Any, dag_run: Any, tmp_path: Path
) -> None:
    result = run_content_pipeline(
        dag_run, dagbag, tmp_path / "out", prompts_file=str(write_prompts(tmp_path, FEW_ROWS))
    )

    assert result.state == "success"
    entries = manifest_of(result)
    assert [e["status"] for e in entries] == ["completed", "failed", "completed"]
    assert entries[1]["failure_reason"] == "content_safety" and entries[1]["file"] is None
    assert entries[0]["action"] == "resize"
    # No product shot in this batch: the cut-out step had nothing to do and carried every row through.
    assert result.state_of("remove_backgrounds") == "success"
    assert result.xcom("remove_backgrounds")["counts"] == {"completed": 2, "failed": 1}
    assert paid(bloom_conn)["total"] == 3 + 1
    assert len(list((tmp_path / "out").rglob("*.png"))) == 2


def test_content_pipeline_checks_the_prompts_file_before_spending(
    dagbag: Any, bloom_conn: Any, dag_run: Any, tmp_path: Path
) -> None:
    rows = [*FEW_ROWS, ("A sunset over the bay", "4:7", "2K", "feed")]
    result = run_content_pipeline(
        dag_run, dagbag, tmp_path / "out", prompts_file=str(write_prompts(tmp_path, rows))
    )

    assert result.state == "failed"
    assert result.state_of("read_batch") == "failed"
    assert paid(bloom_conn)["total"] == 0 and bloom_conn.requests()["total"] == 0
    pipeline = import_example("bloom_content_pipeline")
    with pytest.raises(ValueError, match=r"prompts.csv line 5: .*aspect_ratio.*'4:7'"):
        pipeline.read_prompts(str(tmp_path / "prompts.csv"))


def test_content_pipeline_stops_before_spending_when_credits_are_short(
    dagbag: Any, bloom_conn: Any, dag_run: Any, tmp_path: Path
) -> None:
    bloom_conn.set_credits(5)
    result = run_content_pipeline(dag_run, dagbag, tmp_path)

    assert result.state == "failed"
    assert result.state_of("check_credits") == "failed"
    assert paid(bloom_conn)["total"] == 0
    assert not list(tmp_path.rglob("*.png"))


def test_brand_onboarding_creates_waits_and_generates_with_the_new_brand(
    dagbag: Any, bloom_conn: Any, dag_run: Any
) -> None:
    result = dag_run(
        dagbag.get_dag("bloom_brand_onboarding"), run_conf={"brand_url": "https://acme-rockets.com"}
    )

    assert result.state == "success"
    report = result.xcom("report")
    brand_id = result.xcom("create_brand")
    assert report["brand_id"] == brand_id != DEFAULT_BRAND_ID
    assert report["brand_status"] == "ready" and report["test_image_status"] == "completed"
    (image,) = bloom_conn.image_records([report["test_image_id"]])
    assert image["brand_id"] == brand_id  # the test image used the new brand, not the connection's
    assert bloom_conn.requests()["by_operation"]["brands.create"] == 1
    assert paid(bloom_conn)["images.generate"] == 1


def test_brand_onboarding_fails_clearly_when_bloom_cannot_read_the_site(
    dagbag: Any, bloom_conn: Any, dag_run: Any
) -> None:
    url = f"https://{BRAND_FAIL_MARKER}.example.com"
    result = dag_run(dagbag.get_dag("bloom_brand_onboarding"), run_conf={"brand_url": url})

    assert result.state == "failed"
    assert result.state_of("wait_for_brand") == "failed"
    assert result.state_of("test_generation") == "upstream_failed"
    assert paid(bloom_conn)["images.generate"] == 0


@pytest.mark.parametrize("with_logo", [False, True])
def test_brand_onboarding_needs_a_logo_before_generating(
    dagbag: Any, bloom_conn: Any, dag_run: Any, with_logo: bool
) -> None:
    """Bloom generates only with a `ready` brand: without a logo the DAG stops at the sensor, unpaid."""
    conf: dict[str, Any] = {"brand_url": f"https://{BRAND_LOGO_REQUIRED_MARKER}.example.com"}
    if with_logo:
        conf["logo_url"] = "https://acme.example.com/logo.png"
    result = dag_run(dagbag.get_dag("bloom_brand_onboarding"), run_conf=conf)

    if with_logo:
        assert result.state == "success"
        assert result.xcom("report")["brand_status"] == "ready"
        assert paid(bloom_conn)["images.generate"] == 1
    else:
        assert result.state == "failed" and result.state_of("wait_for_brand") == "failed"
        assert result.state_of("test_generation") == "upstream_failed"
        assert paid(bloom_conn)["images.generate"] == 0


def test_batch_collect_fires_everything_then_collects_with_one_sensor(
    dagbag: Any, bloom_conn: Any, dag_run: Any
) -> None:
    prompts = ["A red kite", "A blue boat", f"A banned thing {CONTENT_SAFETY_MARKER}"]
    result = dag_run(
        dagbag.get_dag("bloom_batch_collect"),
        run_conf={"prompts": prompts, "variant_count": 2, "aspect_ratio": "4:5"},
    )

    assert result.state == "success"
    fired = [result.xcom("fire", map_index=i) for i in range(len(prompts))]
    assert all(len(ids) == 2 for ids in fired)
    records = result.xcom("collect")
    assert [r["id"] for r in records] == [i for ids in fired for i in ids]
    assert result.xcom("summarize")["statuses"] == {"completed": 4, "failed": 2}
    operations = bloom_conn.requests()["by_operation"]
    assert operations["images.generate"] == 3
    # One long-poll on every id of the batch, not one request per image.
    assert operations["images.list"] == 1 and operations.get("images.get", 0) == 0


def test_the_nightly_catalogue_runs_three_thousand_rows_in_five_tasks(
    dagbag: Any, bloom_conn: Any, dag_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped 3,000-row catalogue, every step one task, against the emulator with its limit off and
    a connection budget to match (the pace at Bloom's real limit is measured in bench/bench_batch.py)."""
    from tests.helpers import conn_json

    monkeypatch.setenv(
        "AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, requests_per_minute=60000)
    )
    bloom_conn.set_credits(100_000)
    result = dag_run(dagbag.get_dag("bloom_catalogue_nightly"), run_conf={"output": str(tmp_path)})

    assert result.state == "success"
    assert {t: result.tries_of(t) for t in ("generate", "resize_stories", "cut_out_products")} == {
        "generate": 1,
        "resize_stories": 1,
        "cut_out_products": 1,
    }
    assert paid(bloom_conn) == {
        "total": 5000,
        "images.generate": 3000,
        "images.resize": 1000,
        "images.removeBackground": 1000,
    }
    report = result.xcom("report")
    assert report["rows"] == 3000 and report["files"] == 3000 and report["statuses"] == {"completed": 3000}
    # 3,000 generations (100 of them 4K: 3,100 credits), 1,000 resizes of 2K stories, 1,000 cut-outs
    assert report["credits"] == {
        "images.generate": 3100,
        "images.resize": 1000,
        "images.removeBackground": 1000,
    }
    from airflow_provider_bloom.hooks.bloom import BloomHook

    assert 100_000 - BloomHook().get_credits()["balance"] == report["total_credits"] == 5100
    manifest = [
        json.loads(line) for line in Path(report["manifest"].removeprefix("file://")).read_text().splitlines()
    ]
    assert len(manifest) == 3000 and len({r["file"] for r in manifest}) == 3000
    story = next(r for r in manifest if r["channel"] == "story")
    assert story["operation"] == "images.resize" and story["sku"].startswith("SKU-")
    assert story["lineage"][0]["operation"] == "images.generate" and story["source_image_id"]
    for summary in (result.xcom(t) for t in ("generate", "resize_stories", "cut_out_products", "download")):
        assert len(json.dumps(summary)) < 2000  # XCom holds where the manifest is, and counts
