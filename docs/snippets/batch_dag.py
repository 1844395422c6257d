"""The batch operators' how-to: a catalogue generated, re-framed and downloaded in three tasks."""

from airflow.sdk import DAG

with DAG("bloom_docs_batch", schedule=None):
    # [START howto_operator_bloom_batch]
    from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator, BloomResizeBatchOperator
    from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator

    generate = BloomGenerateBatchOperator(
        task_id="generate",
        rows="bloom_catalogue.csv",  # a list of dicts, an upstream task's output, or a CSV / JSON Lines file
        defaults={"model": "standard"},  # for rows that leave a field empty
        max_credits=6000,  # refuse a costlier batch before anything is spent
        output_path="s3://aws_default@my-bucket/catalogue/{{ ds }}/generate.jsonl",
        deferrable=True,
    )
    stories = BloomResizeBatchOperator(
        task_id="resize_stories",
        images=generate.output,  # the batch's summary: where its manifest is, and counts
        where={"channel": "story"},  # the other rows are carried through unchanged
        target_aspect_ratio="9:16",
        output_path="s3://aws_default@my-bucket/catalogue/{{ ds }}/stories.jsonl",
        deferrable=True,
    )
    download = BloomDownloadImagesOperator(
        task_id="download",
        image_ids=stories.output,
        destination="s3://aws_default@my-bucket/catalogue/{{ ds }}",
    )
    # [END howto_operator_bloom_batch]
