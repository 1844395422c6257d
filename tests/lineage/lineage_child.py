"""Child process of the lineage tests: runs two DAGs with dag.test() under the OpenLineage provider.

Run as ``python -m tests.lineage.lineage_child <output dir> <result file>`` with the OpenLineage
file transport configured in the environment (the parent does it). It runs

- ``bloom_lineage_chain``: generate -> edit -> resize -> download (image ids in, files out);
- ``bloom_lineage_batch``: batch generate -> batch resize -> download (a manifest in) -> write_manifest;

and writes, as JSON, each run's id, task states and XComs, the Asset events' extras, and the
URIs the hook lineage collector holds after the runs.
"""

# ruff: noqa: E402 - the finder below must be in place before Airflow is imported
from __future__ import annotations

import json
import sys
from pathlib import Path


class _NoOpenLineage:
    """A meta path finder that makes OpenLineage unimportable, as if it were not installed: the
    OpenLineage client and every module of the provider, except what Airflow's providers manager
    reads of every installed provider's package metadata (its ``get_provider_info``)."""

    BLOCKED = ("openlineage", "airflow.providers.openlineage")
    ALLOWED = ("airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info")

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        blocked = name in self.BLOCKED or name.startswith(tuple(b + "." for b in self.BLOCKED))
        if blocked and name not in self.ALLOWED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None


if __name__ == "__main__" and "--without-openlineage" in sys.argv:  # before Airflow is imported
    sys.meta_path.insert(0, _NoOpenLineage())

from airflow.sdk import DAG, Asset

from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator, BloomResizeBatchOperator
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomGenerateImageOperator,
    BloomResizeImageOperator,
)
from airflow_provider_bloom.operators.manifest import BloomWriteManifestOperator
from airflow_provider_bloom.testing import mark_metadata_db_migrated, run_dag

START = "2024-01-01"
WAIT = {"wait_for_completion": True, "deferrable": False, "poll_timeout": 10}


def chain_dag(output: Path) -> DAG:
    with DAG("bloom_lineage_chain", schedule=None, start_date=None, catchup=False) as dag:
        generate = BloomGenerateImageOperator(
            task_id="generate", prompt="A red kite over the dunes", aspect_ratio="1:1", model="fast", **WAIT
        )
        edit = BloomEditImageOperator(
            task_id="edit", image_ids=generate.output, prompt="make the kite blue", image_size="4K", **WAIT
        )
        resize = BloomResizeImageOperator(
            task_id="resize", image_ids=edit.output, target_aspect_ratio="9:16", **WAIT
        )
        generate >> edit >> resize
        BloomDownloadImagesOperator(
            task_id="download", image_ids=resize.output, destination=str(output / "chain")
        )
    return dag


def plain_dag(output: Path) -> DAG:
    with DAG("bloom_lineage_plain", schedule=None, start_date=None, catchup=False) as dag:
        generate = BloomGenerateImageOperator(task_id="generate", prompt="A red kite over the dunes", **WAIT)
        BloomDownloadImagesOperator(
            task_id="download", image_ids=generate.output, destination=str(output / "plain")
        )
    return dag


def batch_dag(output: Path) -> DAG:
    rows = [
        {"prompt": "A lighthouse at dusk", "aspect_ratio": "1:1", "channel": "story", "sku": "L-1"},
        {"prompt": "Rolling hills at sunrise", "aspect_ratio": "16:9", "channel": "feed", "sku": "H-2"},
    ]
    folder = output / "batch"
    with DAG("bloom_lineage_batch", schedule=None, start_date=None, catchup=False) as dag:
        generate = BloomGenerateBatchOperator(
            task_id="generate", rows=rows, output_path=str(folder / ".bloom/generate.jsonl"), deferrable=False
        )
        resize = BloomResizeBatchOperator(
            task_id="resize",
            images=generate.output,
            where={"channel": "story"},
            target_aspect_ratio="9:16",
            output_path=str(folder / ".bloom/resize.jsonl"),
            deferrable=False,
        )
        download = BloomDownloadImagesOperator(
            task_id="download",
            image_ids=resize.output,
            destination=str(folder),
            manifest_path=str(folder / ".bloom/download.jsonl"),
        )
        BloomWriteManifestOperator(
            task_id="write_manifest",
            manifest=download.output,
            path=str(folder / "manifest.json"),
            outlets=[Asset(name="bloom_lineage_images", uri="bloom://lineage-test/images")],
        )
    return dag


def asset_extras(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.query(AssetEvent).filter(AssetEvent.source_run_id == run_id).all()
        return [{"uri": e.uri, "task_id": e.source_task_id, "extra": e.extra} for e in events]


def openlineage_modules() -> list[str]:
    """The OpenLineage modules imported in this process (beyond the providers manager's)."""
    return sorted(
        m for m in sys.modules if m.startswith(_NoOpenLineage.BLOCKED) and m not in _NoOpenLineage.ALLOWED
    )


def main(output: Path, result_file: Path, without_openlineage: bool = False) -> None:
    results: dict[str, object] = {}
    mark_metadata_db_migrated()  # the parent test session migrated the database
    dags = [plain_dag(output)] if without_openlineage else [chain_dag(output), batch_dag(output)]
    for dag in dags:
        result = run_dag(dag)
        results[dag.dag_id] = {
            "state": result.state,
            "run_id": result.run_id,
            "tasks": {task: state for (task, _), (state, _) in result.tasks.items()},
            "xcoms": {f"{t}.{k}": v for (t, _, k), v in result.xcoms().items()},
            "asset_events": asset_extras(result.run_id),
        }
    results["openlineage_modules"] = openlineage_modules()
    from airflow.sdk.lineage import get_hook_lineage_collector

    collected = get_hook_lineage_collector().collected_assets
    results["hook_lineage"] = {
        "inputs": [i.asset.uri for i in collected.inputs],
        "outputs": [o.asset.uri for o in collected.outputs],
    }
    result_file.write_text(json.dumps(results, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), without_openlineage="--without-openlineage" in sys.argv)
