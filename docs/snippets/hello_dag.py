"""The README's example DAG: generate two images, then wait for them in the triggerer."""

# [START readme_example]
from airflow.sdk import DAG

from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.sensors.images import BloomImageSensor

with DAG("bloom_hello", schedule=None) as dag:
    generate = BloomGenerateImageOperator.partial(task_id="generate", aspect_ratio="4:5").expand(
        prompt=["a red bicycle at dawn", "a blue kayak on a lake"]
    )
    wait = BloomImageSensor(task_id="wait", image_ids=generate.output, deferrable=True)
# [END readme_example]
