"""The operators' how-to guides: each section between markers is shown on one page of docs/howto/."""

# [START howto_bloom_imports]
from airflow.sdk import DAG, ObjectStoragePath, Param

from airflow_provider_bloom.logic.prices import estimate_credits
from airflow_provider_bloom.operators.brands import (
    BloomCreateBrandOperator,
    BloomDeleteBrandOperator,
    BloomListBrandsOperator,
    BloomUpdateBrandLogoOperator,
)
from airflow_provider_bloom.operators.credits import BloomAccountOperator
from airflow_provider_bloom.operators.download import BloomDownloadImagesOperator
from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomGenerateImageOperator,
    BloomRemoveBackgroundOperator,
    BloomResizeImageOperator,
    BloomVectorizeImageOperator,
)
from airflow_provider_bloom.operators.library import (
    BloomDeleteImagesOperator,
    BloomListImagesOperator,
    BloomSearchImagesOperator,
    BloomUploadImageOperator,
)
from airflow_provider_bloom.sensors.brands import BloomBrandSensor
from airflow_provider_bloom.sensors.credits import BloomCreditsSensor
from airflow_provider_bloom.sensors.images import BloomImageSensor

# [END howto_bloom_imports]

assert estimate_credits(prompts=3, image_size="4K", variant_count=2) == 12  # 3 x 2 x 2 credits

with DAG(
    "bloom_docs_images",
    schedule=None,
    params={"colour": Param("orange"), "prompts": Param(["a lighthouse at dawn"])},
):
    # [START howto_operator_bloom_generate]
    generate = BloomGenerateImageOperator.partial(task_id="generate", aspect_ratio="4:5").expand(
        prompt=["a red bicycle at dawn", "a blue kayak on a lake"]
    )
    wait = BloomImageSensor(task_id="wait", image_ids=generate.output, deferrable=True)
    # [END howto_operator_bloom_generate]

    # [START howto_operator_bloom_generate_and_wait]
    hero = BloomGenerateImageOperator(
        task_id="hero",
        prompt="a lighthouse at dawn, {{ params.colour }} sky",
        image_size="4K",
        wait_for_completion=True,  # returns the finished image records instead of ids
        deferrable=True,  # the wait runs in the triggerer once it passes defer_after
        defer_after=10,  # the first 10 s in the worker: short waits never defer
        wait_timeout=1800,
    )
    # [END howto_operator_bloom_generate_and_wait]

    # [START howto_operator_bloom_post_processing]
    stories = BloomResizeImageOperator(task_id="stories", image_ids=wait.output, target_aspect_ratio="9:16")
    cutout = BloomRemoveBackgroundOperator(
        task_id="cutout", image_ids=wait.output, wait_for_completion=True, deferrable=True
    )
    mark = BloomVectorizeImageOperator(task_id="mark", image_ids=cutout.output)
    retouch = BloomEditImageOperator(
        task_id="retouch", image_ids=wait.output, prompt="make the sky {{ params.colour }}", image_size="4K"
    )
    done = BloomImageSensor(task_id="wait_mark", image_ids=mark.output)
    # [END howto_operator_bloom_post_processing]

    # [START howto_operator_bloom_upload]
    refs = BloomUploadImageOperator(
        task_id="refs",
        images=[
            ObjectStoragePath("s3://aws_default@brand-assets/hero.png"),
            "/data/shelf.jpg",
            "https://cdn.example.com/packshot.webp",
        ],
    )
    gen = BloomGenerateImageOperator(
        task_id="gen", prompt="our bottle on a beach", reference_image_ids=refs.output["image_ids"]
    )
    # [END howto_operator_bloom_upload]

    # [START howto_operator_bloom_search]
    similar = BloomSearchImagesOperator(task_id="similar", query="product on white background", limit=5)
    autumn = BloomGenerateImageOperator(
        task_id="autumn", prompt="the product in autumn light", reference_image_ids=similar.output
    )
    # [END howto_operator_bloom_search]

    # [START howto_operator_bloom_list]
    failed_today = BloomListImagesOperator(task_id="failed", status="failed", max_results=50)
    # [END howto_operator_bloom_list]

    # [START howto_operator_bloom_download]
    store = BloomDownloadImagesOperator(
        task_id="store",
        image_ids=[cutout.output, done.output],
        destination=ObjectStoragePath("s3://aws_default@content-drop/bloom"),
        name_template="{{ ds }}/{image_id}.png",
    )
    # [END howto_operator_bloom_download]

    # [START howto_operator_bloom_delete]
    cleanup = BloomDeleteImagesOperator(
        task_id="cleanup", image_ids=[gen.output, cutout.output], trigger_rule="all_done"
    )
    # [END howto_operator_bloom_delete]

    # [START howto_sensor_bloom_credits]
    check = BloomCreditsSensor(
        task_id="credits",
        prompts="{{ params.prompts | length }}",
        image_size="4K",
        variant_count=2,
        extra_credits=10,
    )
    check >> BloomGenerateImageOperator(
        task_id="gen_4k", prompt="{{ params.prompts[0] }}", image_size="4K", variant_count=2
    )
    # [END howto_sensor_bloom_credits]

    # [START howto_operator_bloom_account]
    whoami = BloomAccountOperator(task_id="whoami", workspace_id="{{ var.value.bloom_workspace }}")
    # [END howto_operator_bloom_account]

with DAG("bloom_docs_brands", schedule=None):
    # [START howto_operator_bloom_brands]
    brand = BloomCreateBrandOperator(task_id="onboard", url="https://acme.com")
    ready = BloomBrandSensor(task_id="brand_ready", brand_id=brand.output, deferrable=True)
    logo = BloomUpdateBrandLogoOperator(
        task_id="logo",
        brand_id=brand.output,
        logo_file=ObjectStoragePath("s3://aws_default@brand-assets/logo.svg"),
    )
    ready_brands = BloomListBrandsOperator(task_id="brands", status="ready")
    drop = BloomDeleteBrandOperator(task_id="drop", brand_id=brand.output, missing_ok=True)
    # [END howto_operator_bloom_brands]
