"""Lineage under the OpenLineage provider (its file transport), with dag.test() in a child process.

The child (``lineage_child.py``) runs a chain of single-image operators (generate -> edit -> resize
-> download) and a batch pipeline (batch generate -> batch resize -> download of the manifest ->
write_manifest) against the emulator. The OpenLineage events it wrote, the Asset events in the
metadata database and Airflow's hook lineage collector are then read here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, conn_json

CHILD = "tests.lineage.lineage_child"

pytest.importorskip("airflow.providers.openlineage", reason="the OpenLineage provider is a dev dependency")


def run_child(folder: Path, emulator: Any, *flags: str, **env: str) -> dict[str, Any]:
    """Run ``lineage_child`` against the emulator; its result (the child must succeed)."""
    import dataclasses

    from airflow_provider_bloom.emulator.pytest_plugin import emulator_test_config

    emulator.configure(**dataclasses.asdict(emulator_test_config()))
    emulator.reset()
    result_file = folder / "result.json"
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.lineage.lineage_child",
            str(folder / "output"),
            str(result_file),
            *flags,
        ],
        cwd=REPO,
        env={
            **os.environ,
            "AIRFLOW_CONN_BLOOM_DEFAULT": conn_json(emulator.base_url),
            "AIRFLOW__CORE__DAGS_FOLDER": str(folder),  # dag.test() need not parse the examples
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert child.returncode == 0 and result_file.exists(), child.stdout[-4000:] + child.stderr[-6000:]
    (folder / "child.log").write_text(child.stdout + child.stderr)
    return dict(json.loads(result_file.read_text()))


@pytest.fixture(scope="module")
def lineage_run(tmp_path_factory: pytest.TempPathFactory, bloom_emulator_session: Any) -> dict[str, Any]:
    """Run the child once for the module; its result, its OpenLineage events and its output folder."""
    folder = tmp_path_factory.mktemp("lineage")
    log = folder / "openlineage.jsonl"
    transport = {"type": "file", "log_file_path": str(log), "append": True}
    result = run_child(
        folder,
        bloom_emulator_session,
        AIRFLOW__OPENLINEAGE__TRANSPORT=json.dumps(transport),
        AIRFLOW__OPENLINEAGE__NAMESPACE="bloom-lineage-test",
    )
    return {"result": result, "events": events_of(log), "output": folder / "output", "log": log}


def events_of(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def complete_event(run: dict[str, Any], job: str) -> dict[str, Any]:
    (event,) = [e for e in run["events"] if e["eventType"] == "COMPLETE" and e["job"]["name"] == job]
    return event


def files_under(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*") if p.is_file()}


def test_the_download_reports_exactly_its_final_files_with_their_provenance(
    lineage_run: dict[str, Any],
) -> None:
    output: Path = lineage_run["output"]
    event = complete_event(lineage_run, "bloom_lineage_chain.download")
    assert {(d["namespace"], d["name"]) for d in event["outputs"]} == {
        ("file", name) for name in files_under(output / "chain")
    }
    (file,) = event["outputs"]
    provenance = lineage_run["result"]["bloom_lineage_chain"]["xcoms"]["resize.bloom_provenance"][0]
    assert file["name"].endswith(provenance["image_id"] + ".png")
    facet = file["facets"]["bloom_image"]
    assert facet["image_id"] == provenance["image_id"] and facet["prompt"] == "make the kite blue"
    assert facet["_schemaURL"].endswith("#bloomimagedatasetfacet")
    run_facet = event["run"]["facets"]["bloom_provenance"]
    assert run_facet["total"] == 1 and not run_facet["truncated"]
    assert run_facet["images"][0]["source_image_id"] == provenance["source_image_id"]
    # The Bloom image the file holds is the download's input: the resize task's output.
    resize = complete_event(lineage_run, "bloom_lineage_chain.resize")
    assert [(d["namespace"], d["name"]) for d in event["inputs"]] == [
        (d["namespace"], d["name"]) for d in resize["outputs"]
    ]

    # With a batch manifest in: the files out (the manifest of the files is named in the run facet),
    # the step's manifest in.
    batch = complete_event(lineage_run, "bloom_lineage_batch.download")
    written = {str(p) for p in (output / "batch").glob("*.png")}
    assert {d["name"] for d in batch["outputs"]} == written and len(written) == 2
    manifest = batch["run"]["facets"]["bloom_provenance"]["manifest"]
    assert manifest == f"file://{output / 'batch/.bloom/download.jsonl'}"
    assert {d["namespace"] for d in batch["outputs"]} == {"file"}
    assert [d["name"] for d in batch["inputs"]] == [str(output / "batch/.bloom/resize.jsonl")]
    by_file = {d["name"]: d["facets"].get("bloom_image") for d in batch["outputs"]}
    assert {name for name, facet in by_file.items() if facet} == {
        str(p) for p in (output / "batch").glob("*.png")
    }
    assert {f["prompt"] for f in by_file.values() if f} == {
        "A lighthouse at dusk",
        "Rolling hills at sunrise",
    }
    resized = next(f for f in by_file.values() if f and f["action"] == "resize")
    assert resized["aspect_ratio"] == "9:16" and resized["lineage"][0]["operation"] == "images.generate"
    assert resized["source_image_id"] == resized["lineage"][0]["image_id"]


def test_no_temporary_part_file_is_reported_anywhere(lineage_run: dict[str, Any]) -> None:
    output: Path = lineage_run["output"]
    assert ".part" not in lineage_run["log"].read_text()
    assert not [p for p in output.rglob("*") if ".part" in p.name]
    # Airflow's hook lineage collector saw the final files only (ObjectStoragePath reports what it writes).
    hook = lineage_run["result"]["hook_lineage"]
    assert not [uri for uri in hook["inputs"] + hook["outputs"] if ".part" in uri]
    assert {uri.removeprefix("file://") for uri in hook["outputs"] if uri.endswith(".png")} == {
        str(p) for p in output.rglob("*.png")
    }


def test_every_image_operator_records_the_chain_from_source_to_derived(lineage_run: dict[str, Any]) -> None:
    run = lineage_run["result"]["bloom_lineage_chain"]
    (generated,) = run["xcoms"]["generate.bloom_provenance"]
    (edited,) = run["xcoms"]["edit.bloom_provenance"]
    (resized,) = run["xcoms"]["resize.bloom_provenance"]
    assert generated["action"] == "generation" and generated["source_image_id"] is None
    assert (generated["prompt"], generated["model"], generated["image_size"], generated["credits"]) == (
        "A red kite over the dunes",
        "fast",
        "2K",
        1,
    )
    assert edited["source_image_id"] == generated["image_id"] and edited["action"] == "edit"
    assert (edited["prompt"], edited["model"], edited["image_size"], edited["credits"]) == (
        "make the kite blue",
        "pro",  # Bloom's default: the edit named no model
        "4K",
        2,
    )
    assert edited["aspect_ratio"] == "1:1"  # an edit keeps its source's ratio
    assert resized["source_image_id"] == edited["image_id"] and resized["aspect_ratio"] == "9:16"
    assert resized["lineage"] == [
        {"operation": "images.generate", "image_id": generated["image_id"]},
        {"operation": "images.edit", "image_id": edited["image_id"]},
    ]
    assert resized["credits"] == 2  # a resize costs like a generation of its (4K) source
    # Each task's COMPLETE event: its source image in, its new image out, the provenance as a run facet.
    event = complete_event(lineage_run, "bloom_lineage_chain.edit")
    assert [d["name"] for d in event["inputs"]] == [f"images/{generated['image_id']}"]
    assert [d["name"] for d in event["outputs"]] == [f"images/{edited['image_id']}"]
    assert event["outputs"][0]["namespace"].startswith("bloom://127.0.0.1:")
    assert event["run"]["facets"]["bloom_provenance"]["images"][0]["source_image_id"] == generated["image_id"]
    batch = complete_event(lineage_run, "bloom_lineage_batch.resize")
    assert [i["action"] for i in batch["run"]["facets"]["bloom_provenance"]["images"]] == ["resize"]


def test_asset_events_carry_the_provenance_in_extra(lineage_run: dict[str, Any]) -> None:
    chain = lineage_run["result"]["bloom_lineage_chain"]
    (event,) = chain["asset_events"]
    (resized,) = chain["xcoms"]["resize.bloom_provenance"]
    assert event["uri"].endswith(resized["image_id"] + ".png")
    assert event["extra"]["bloom_image_id"] == resized["image_id"]
    assert event["extra"]["bloom_provenance"] == resized

    batch = {e["task_id"]: e for e in lineage_run["result"]["bloom_lineage_batch"]["asset_events"]}
    downloaded = batch["download"]["extra"]
    assert batch["download"]["uri"].endswith("/.bloom/download.jsonl") and downloaded["files"] == 2
    assert downloaded["bloom_provenance"]["total"] == 2 and not downloaded["bloom_provenance"]["truncated"]
    assert {i["prompt"] for i in downloaded["bloom_provenance"]["images"]} == {
        "A lighthouse at dusk",
        "Rolling hills at sunrise",
    }
    written = batch["write_manifest"]["extra"]
    assert (
        written["images"] == 2
        and written["bloom_provenance"]["images"] == downloaded["bloom_provenance"]["images"]
    )


def test_the_provider_imports_and_runs_without_the_openlineage_provider(
    tmp_path: Path, bloom_emulator_session: Any
) -> None:
    # Importing the provider's modules imports nothing of OpenLineage (beyond what Airflow itself
    # imports: the providers manager reads every installed provider's get_provider_info).
    probe = (
        "import json, sys\n"
        "import airflow.sdk\n"
        "before = {m for m in sys.modules if 'openlineage' in m}\n"
        "import airflow_provider_bloom.lineage, airflow_provider_bloom.logic.batch.manifest\n"
        "import airflow_provider_bloom.operators.download, airflow_provider_bloom.operators.images\n"
        "import airflow_provider_bloom.operators.batch, airflow_provider_bloom.operators.manifest\n"
        "print(json.dumps(sorted({m for m in sys.modules if 'openlineage' in m} - before)))\n"
    )
    imported = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(imported.stdout.strip().splitlines()[-1]) == []

    # With OpenLineage unimportable, a DAG runs, records its provenance and downloads its file.
    began = time.monotonic()
    result = run_child(tmp_path, bloom_emulator_session, "--without-openlineage")
    print(f"without OpenLineage: {time.monotonic() - began:.1f}s")
    assert result["openlineage_modules"] == []
    run = result["bloom_lineage_plain"]
    assert run["state"] == "success"
    (generated,) = run["xcoms"]["generate.bloom_provenance"]
    assert generated["prompt"] == "A red kite over the dunes" and generated["model"] == "pro"
    assert run["xcoms"]["download.return_value"] == [
        f"file://{tmp_path / 'output' / 'plain' / generated['image_id']}.png"
    ]
    extra = run["asset_events"][0]["extra"]["bloom_provenance"]
    assert {k: extra[k] for k in ("image_id", "prompt", "model", "credits")} == {
        k: generated[k] for k in ("image_id", "prompt", "model", "credits")
    }
