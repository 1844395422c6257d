"""Provenance records (logic.provenance), their OpenLineage form (lineage) and the per-image manifest
(logic.batch.manifest)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_bloom import lineage
from airflow_provider_bloom.logic import provenance
from airflow_provider_bloom.logic.batch.journal import RowState
from airflow_provider_bloom.logic.batch.manifest import IMAGE_FIELDS, derived_base, image_records, step_record


def chain() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """generate (2 variants, fast, 4K, 3:4) -> edit of the second variant -> resize of the edit to 9:16."""
    body = {
        "prompt": "A red kite",
        "model": "fast",
        "imageSize": "4K",
        "aspectRatio": "3:4",
        "variantCount": 2,
    }
    first, second = provenance.generation_provenance(body, ["g1", "g2"], "vg")
    edited = provenance.derived_provenance(
        "images.edit", {"prompt": "make it blue", "brandSessionId": "b"}, "e1", "g2", second, 1
    )
    resized = provenance.derived_provenance(
        "images.resize", {"targetAspectRatio": "9:16"}, "r1", "e1", edited, 1
    )
    assert first["image_id"] == "g1"
    return second, edited, resized


def test_a_generation_records_its_request_and_shares_its_price_between_variants() -> None:
    generated, _, _ = chain()
    assert generated == {
        "image_id": "g2",
        "operation": "images.generate",
        "action": "generation",
        "prompt": "A red kite",
        "model": "fast",
        "image_size": "4K",
        "aspect_ratio": "3:4",
        "source_image_id": None,
        "lineage": [],
        "variant_group_id": "vg",
        "credits": 2,  # 4K costs 2 per variant: 4 for the request, 2 for this image
        "review": None,
    }
    # Bloom's defaults where the request named none.
    (plain,) = provenance.generation_provenance({"prompt": "p"}, ["x"], None)
    assert (plain["model"], plain["image_size"], plain["credits"]) == ("pro", "2K", 1)


def test_each_derived_image_names_its_source_and_the_whole_chain() -> None:
    generated, edited, resized = chain()
    assert edited["source_image_id"] == "g2" and edited["action"] == "edit"
    # An edit makes new pixels: its own prompt, and Bloom's default model and size (it named none);
    # it keeps its source's ratio.
    assert (edited["prompt"], edited["model"], edited["image_size"], edited["aspect_ratio"]) == (
        "make it blue",
        "pro",
        "2K",
        "3:4",
    )
    assert edited["lineage"] == [{"operation": "images.generate", "image_id": "g2"}]
    # A resize keeps the edit's prompt, model and size, and takes its target ratio.
    assert resized["source_image_id"] == "e1" and resized["action"] == "resize"
    assert (resized["prompt"], resized["model"], resized["image_size"], resized["aspect_ratio"]) == (
        "make it blue",
        "pro",
        "2K",
        "9:16",
    )
    assert resized["lineage"] == [
        {"operation": "images.generate", "image_id": "g2"},
        {"operation": "images.edit", "image_id": "e1"},
    ]
    # Without the source's record (an id from elsewhere), only what the call says, plus the source id.
    alone = provenance.derived_provenance("images.removeBackground", {}, "c1", "u9", None, 1)
    assert alone["source_image_id"] == "u9" and alone["prompt"] is None and alone["lineage"] == []


def test_provenance_pushed_upstream_is_found_by_image_id() -> None:
    generated, edited, _ = chain()
    found = provenance.index([[[generated], None], [edited], "not a record", {"no": "id"}])
    assert set(found) == {"g2", "e1"} and found["e1"]["source_image_id"] == "g2"


def batch_chain() -> list[dict[str, Any]]:
    """A batch: row 1 generated (2 variants) then resized; row 2 refused; row 3 generated, kept as is."""
    rows = [
        {"row": 1, "prompt": "A lighthouse", "aspect_ratio": "1:1", "channel": "story", "action": "mine"},
        {"row": 2, "prompt": "forbidden", "channel": "feed"},
        {"row": 3, "prompt": "Hills", "image_size": "4K", "channel": "feed"},
    ]
    done = {"g1": ("completed", None), "g2": ("completed", None), "g3": ("completed", None)}
    generated = [
        step_record(
            rows[0],
            RowState(ids=["g1", "g2"], attempts=1, variant_group_id="vg"),
            done,
            operation="images.generate",
            credits=2,
            waited=True,
            request={
                "prompt": "A lighthouse",
                "aspectRatio": "1:1",
                "variantCount": 2,
                "brandSessionId": "b",
            },
        ),
        step_record(
            rows[1],
            RowState(error_code="validation_error", error="refused", attempts=1),
            done,
            operation="images.generate",
            credits=1,
            waited=True,
        ),
        step_record(
            rows[2],
            RowState(ids=["g3"], attempts=2),
            done,
            operation="images.generate",
            credits=2,
            waited=True,
            request={"prompt": "Hills", "imageSize": "4K"},
        ),
    ]
    resized = [
        step_record(
            derived_base(generated[0], image_id),
            RowState(ids=[new], attempts=1),
            {new: ("completed", None)},
            operation="images.resize",
            credits=1,
            waited=True,
            request={"targetAspectRatio": "9:16", "brandSessionId": "b"},
        )
        for image_id, new in (("g1", "r1"), ("g2", "r2"))
    ]
    return [*resized, generated[1], generated[2]]


def test_the_image_manifest_has_one_record_per_image_and_accounts_for_every_row() -> None:
    entries = image_records(batch_chain())
    assert [(e["row"], e["image_id"], e["status"]) for e in entries] == [
        (1, "r1", "completed"),
        (1, "r2", "completed"),
        (2, None, "rejected"),
        (3, "g3", "completed"),
    ]
    assert all(list(e)[: len(IMAGE_FIELDS)] == list(IMAGE_FIELDS) for e in entries)
    story = entries[1]
    assert story["source_image_id"] == "g2" and story["lineage"] == [
        {"operation": "images.generate", "image_id": "g2"}
    ]
    assert (story["action"], story["aspect_ratio"], story["prompt"], story["model"], story["image_size"]) == (
        "resize",
        "9:16",
        "A lighthouse",
        "pro",
        "2K",
    )
    # The generation's 2 credits are shared by its 2 variants: 1 here, plus this image's resize; the
    # variant group is the original's.
    assert (story["credits"], story["total_credits"], story["variant_group_id"]) == (1, 2, "vg")
    # The row's own columns follow; one named like a format field is renamed, not overwritten.
    assert story["channel"] == "story" and story["row_action"] == "mine" and story["action"] == "resize"
    refused = entries[2]
    assert (refused["failure_reason"], refused["credits"], refused["attempts"]) == ("validation_error", 0, 1)
    kept = entries[3]
    assert (kept["action"], kept["source_image_id"], kept["image_size"], kept["credits"]) == (
        "generation",
        None,
        "4K",
        2,
    )
    assert kept["attempts"] == 2 and kept["lineage"] == []


def test_the_image_manifest_takes_each_file_and_its_size_from_the_download(tmp_path: Path) -> None:
    from airflow_provider_bloom.operators.manifest import write_manifest

    records = batch_chain()
    records[0].update(file="file:///out/r1.png", files=["file:///out/r1.png"], sizes=[11], bytes=11)
    records[3].update(file="file:///out/g3.png", files=["file:///out/g3.png"], sizes=[7], bytes=7)
    path = tmp_path / "out" / "manifest.json"
    entries = write_manifest(records, str(path))
    assert json.loads(path.read_text()) == entries
    assert [(e["file"], e["bytes"]) for e in entries] == [
        ("file:///out/r1.png", 11),
        (None, None),
        (None, None),
        ("file:///out/g3.png", 7),
    ]
    lines = tmp_path / "manifest.jsonl"
    write_manifest(records, str(lines))
    assert [json.loads(line) for line in lines.read_text().splitlines()] == entries


def test_a_review_decision_is_part_of_the_provenance() -> None:
    records = batch_chain()
    review = {"decision": "approved", "reason": None, "instruction": None, "by": "ana", "at": "t", "round": 1}
    records[3]["review"] = {**review, "timed_out": False}
    (entry,) = [e for e in image_records(records) if e["image_id"] == "g3"]
    assert entry["review"]["decision"] == "approved" and entry["review"]["by"] == "ana"
    assert provenance.from_manifest_record(records[3], "g3")["review"] == entry["review"]


def test_dataset_names_follow_the_openlineage_naming_spec() -> None:
    from airflow.sdk import ObjectStoragePath

    assert lineage.storage_dataset(ObjectStoragePath("file:///data/out/a.png")) == ("file", "/data/out/a.png")
    assert lineage.storage_dataset(ObjectStoragePath("s3://aws_default@bucket/x/a.png")) == (
        "s3://bucket",
        "x/a.png",
    )
    assert lineage.storage_dataset(ObjectStoragePath("gs://bk/z/w.svg")) == ("gs://bk", "z/w.svg")
    assert lineage.storage_dataset("/data/m.json") == ("file", "/data/m.json")
    assert lineage.bloom_dataset("https://api.trybloom.ai/api/v1", "abc") == (
        "bloom://api.trybloom.ai",
        "images/abc",
    )


def test_asset_extras_and_facets_stay_bounded() -> None:
    many = [provenance.provenance(f"i{n}", "images.generate", prompt="p" * 2000) for n in range(250)]
    extra = provenance.asset_extra(many, manifest="m")
    assert extra["manifest"] == "m"
    assert len(extra["bloom_provenance"]["images"]) == provenance.MAX_EXTRA_IMAGES
    assert extra["bloom_provenance"]["total"] == 250 and extra["bloom_provenance"]["truncated"]
    assert provenance.asset_extra(many[:1]) == {"bloom_image_id": "i0", "bloom_provenance": many[0]}

    pytest.importorskip("airflow.providers.openlineage")
    facet = lineage.run_facet(many, manifest="s3://b/m.jsonl")
    assert len(facet.images) == lineage.MAX_RUN_FACET_IMAGES and facet.total == 250 and facet.truncated
    from openlineage.client.serde import Serde

    serialized = json.loads(Serde.to_json(facet))
    assert serialized["_schemaURL"].endswith("#bloomprovenancerunfacet") and serialized["total"] == 250
    result = lineage.operator_lineage(
        outputs=[("file", f"/out/i{n}.png") for n in range(1100)], output_records=many * 5, images=many
    )
    assert len(result.outputs) == 1100
    assert sum(1 for d in result.outputs if d.facets) == lineage.MAX_DATASET_FACETS


def test_the_manifest_operator_checks_its_input_and_fails_when_nothing_completed(tmp_path: Path) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_bloom.exceptions import BloomInputError
    from airflow_provider_bloom.operators.manifest import BloomWriteManifestOperator

    context: Any = {"ti": None, "outlet_events": None}
    bad = BloomWriteManifestOperator(task_id="m", manifest=["not", "records"], path=str(tmp_path / "m.json"))
    with pytest.raises(BloomInputError, match="manifest"):
        bad.execute(context)
    refused = [r for r in batch_chain() if r["status"] == "rejected"]
    none = BloomWriteManifestOperator(task_id="m", manifest=refused, path=str(tmp_path / "none.jsonl"))
    with pytest.raises(AirflowFailException, match=r"None of the 1 images completed .*validation_error"):
        none.execute(context)
    assert json.loads((tmp_path / "none.jsonl").read_text())["status"] == "rejected"  # written all the same
    ok = BloomWriteManifestOperator(task_id="m", manifest=batch_chain(), path=str(tmp_path / "all.jsonl"))
    assert ok.execute(context) == {
        "manifest": str(tmp_path / "all.jsonl"),
        "images": 4,
        "counts": {"completed": 3, "rejected": 1},
        "credits": 2 + 2 + 0 + 2,  # r1 and r2: half the generation + a resize each; g3: a 4K image
        "files": 0,
    }


#: What the pure logic may import of the package.
LOW = {"logic", "exceptions", "client"}


def test_the_provenance_rules_and_the_manifest_load_no_airflow_and_nothing_above_logic() -> None:
    """The provenance rules are pure logic: the batch manifest reads them without loading lineage.py,
    an operator or Airflow (a fresh interpreter, so nothing loaded before counts)."""
    probe = (
        "import json, sys\n"
        "import airflow_provider_bloom.logic.provenance, airflow_provider_bloom.logic.batch.manifest\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    root = Path(__file__).resolve().parents[2]
    logic = root / "airflow_provider_bloom" / "logic"
    for path in [logic / "provenance.py", *sorted((logic / "batch").glob("*.py"))]:  # lazy imports too
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                top = node.module.split(".")[:2]
                assert top[0] != "airflow" and (top[0] != "airflow_provider_bloom" or top[1] in LOW), (
                    f"{path.name}:{node.lineno} imports {node.module}"
                )
    run = [sys.executable, "-c", probe]
    done = subprocess.run(run, cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m == "airflow" or m.startswith("airflow.")] == []
    ours = {m for m in loaded if m.startswith("airflow_provider_bloom.")}
    assert ours <= {
        "airflow_provider_bloom.exceptions",
        "airflow_provider_bloom.logic",
        "airflow_provider_bloom.logic.batch",
        "airflow_provider_bloom.logic.batch.journal",
        "airflow_provider_bloom.logic.batch.manifest",
        "airflow_provider_bloom.logic.prices",
        "airflow_provider_bloom.logic.provenance",
        # the price list checks an estimate's arguments against Bloom's spec (pure, no HTTP)
        "airflow_provider_bloom.client",
        "airflow_provider_bloom.client.spec",
        "airflow_provider_bloom.openapi",
    }, sorted(ours)


def test_lineage_imports_no_operator_or_sensor() -> None:
    """The lineage module sits below the operators: it names their files through tasks.storage."""
    path = Path(__file__).resolve().parents[2] / "airflow_provider_bloom" / "lineage.py"
    modules = [
        node.module
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert "airflow_provider_bloom.tasks.storage" in modules
    assert [
        m
        for m in modules
        if m.startswith(("airflow_provider_bloom.operators", "airflow_provider_bloom.sensors"))
    ] == []
