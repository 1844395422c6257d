"""The whole content pipeline in one DAG, under dag.test() against the emulator:

credits check -> generate -> wait -> remove background -> wait -> vectorize -> wait -> download to a local
ObjectStoragePath -> clean up. The files on disk must be real PNGs (with alpha) and SVGs of the
expected sizes. Runs through the ``dag_run`` fixture, which also asserts that the API key appears in
no log line, XCom or rendered field.
"""

from __future__ import annotations

from pathlib import Path

from airflow.sdk import DAG, ObjectStoragePath

from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.images import (
    BloomGenerateImageOperator,
    BloomRemoveBackgroundOperator,
    BloomVectorizeImageOperator,
)
from airflow_provider_bloom.operators.library import BloomDeleteImagesOperator
from airflow_provider_bloom.sensors.credits import BloomCreditsSensor
from airflow_provider_bloom.sensors.images import BloomImageSensor
from tests.helpers import START, png_size, svg_size

PNG_RGBA = 6  # IHDR colour type of a PNG with an alpha channel


def test_generate_cut_out_vectorize_and_download(bloom_conn, dag_run, tmp_path: Path):
    out_dir = tmp_path / "library"
    with DAG("bloom_pipeline_chain", schedule=None, start_date=START, default_args={"retries": 0}) as dag:
        credits = BloomCreditsSensor(task_id="credits", prompts=1, variant_count=2, extra_credits=4)
        generate = BloomGenerateImageOperator(
            task_id="generate", prompt="a minimal fox mark, flat colours", aspect_ratio="4:3", variant_count=2
        )
        generated = BloomImageSensor(task_id="wait_generated", image_ids=generate.output, deferrable=True)
        cutouts = BloomRemoveBackgroundOperator(task_id="remove_background", image_ids=generated.output)
        cut = BloomImageSensor(
            task_id="wait_cutouts", image_ids=cutouts.output, deferrable=False, poke_interval=0.1
        )
        vectors = BloomVectorizeImageOperator(task_id="vectorize", image_ids=cut.output)
        vectorized = BloomImageSensor(task_id="wait_vectors", image_ids=vectors.output, deferrable=True)
        download = BloomDownloadImagesOperator(
            task_id="download",
            image_ids=[cut.output, vectorized.output],
            destination=ObjectStoragePath(f"file://{out_dir}"),
            name_template="{{ ds }}/{image_id}.png",
        )
        cleanup = BloomDeleteImagesOperator(
            task_id="cleanup", image_ids=[generate.output, cutouts.output, vectors.output]
        )
        credits >> generate
        download >> cleanup
    run = dag_run(dag)

    assert run.state == "success", run.tasks
    cut_records, vector_records = run.xcom("wait_cutouts"), run.xcom("wait_vectors")
    assert [r["actionType"] for r in cut_records] == ["remove-background"] * 2
    assert [r["actionType"] for r in vector_records] == ["vectorize"] * 2
    (day,) = out_dir.iterdir()
    paths = run.xcom("download")
    assert paths == [f"file://{day}/{r['id']}.png" for r in cut_records] + [
        f"file://{day}/{r['id']}.svg" for r in vector_records
    ]
    for record in cut_records:
        data = (day / f"{record['id']}.png").read_bytes()
        assert png_size(data) == (record["width"], record["height"]) == (2048, 1536)  # 4:3 at 2K
        assert data[25] == PNG_RGBA  # the background really is cut out
    for record in vector_records:
        data = (day / f"{record['id']}.svg").read_bytes()
        assert svg_size(data) == (2048, 1536)
    assert sorted(p.name for p in day.iterdir()) == sorted(Path(p).name for p in paths)  # no temp files left

    assert run.xcom("cleanup") == {"requested": 6, "deleted_count": 6}
    assert BloomHook().list_images(source="generated")["images"] == []
    seen = bloom_conn.requests()
    assert seen["by_operation"]["images.generate"] == 1
    assert (seen["by_operation"]["images.removeBackground"], seen["by_operation"]["images.vectorize"]) == (
        2,
        2,
    )
    assert seen["file_requests"] == 4
