"""bloom_brand_onboarding: turn a website into a Bloom brand, wait until it is ready, try one image.

    create_brand -> wait_for_brand (deferrable: the minutes of analysis pass in the triggerer)
      -> test_generation (one image with the new brand, waited for in the triggerer) -> report

Bloom analyses the site in the background (colours, fonts, logo, images); that takes minutes. A brand
that ends ``failed`` fails ``wait_for_brand`` with Bloom's failure code; one that ends ``logo_required``
(Bloom found no usable logo) fails it with instructions, since Bloom cannot generate with a brand
until it has a logo: pass the param ``logo_url`` to give Bloom the logo up front.

Params: ``brand_url`` (a public website or Instagram profile), ``test_prompt``, ``logo_url`` (optional).
Connection ``bloom_default``. The brand id is the task ``create_brand``'s XCom: put it in the
connection's ``brand_session_id`` extra to make it the default brand of your other DAGs.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import Param, dag, task

from airflow_provider_bloom.operators.brands import BloomCreateBrandOperator
from airflow_provider_bloom.operators.images import BloomGenerateImageOperator
from airflow_provider_bloom.sensors.brands import BloomBrandSensor

log = logging.getLogger(__name__)


@dag(
    dag_id="bloom_brand_onboarding",
    schedule=None,
    catchup=False,
    tags=["bloom", "example"],
    doc_md=__doc__,
    params={
        "brand_url": Param("https://example.com", type="string", minLength=8, description="Site to onboard"),
        "test_prompt": Param(
            "A hero image for our homepage in the brand's colours", type="string", minLength=1, maxLength=2000
        ),
        "logo_url": Param(
            None, type=["null", "string"], description="The brand's logo (else Bloom looks for one)"
        ),
    },
    render_template_as_native_obj=True,  # so an empty logo_url stays None
)
def bloom_brand_onboarding() -> None:
    create_brand = BloomCreateBrandOperator(
        task_id="create_brand", url="{{ params.brand_url }}", logo_url="{{ params.logo_url or None }}"
    )

    wait_for_brand = BloomBrandSensor(
        task_id="wait_for_brand",
        brand_id=create_brand.output,
        deferrable=True,
        timeout=3600,
    )

    test_generation = BloomGenerateImageOperator(
        task_id="test_generation",
        prompt="{{ params.test_prompt }}",
        brand_session_id=create_brand.output,
        aspect_ratio="16:9",
        wait_for_completion=True,
        deferrable=True,
    )

    @task
    def report(brand: dict[str, Any], images: list[dict[str, Any]]) -> dict[str, Any]:
        """What was onboarded, and how its first image came out."""
        summary = {
            "brand_id": brand.get("id"),
            "brand_status": brand.get("status"),
            "brand_name": brand.get("name"),
            "test_image_id": images[0]["id"],
            "test_image_status": images[0]["status"],
        }
        log.info(
            "Brand %r (%s) is %s; test image %s is %s",
            summary["brand_name"],
            summary["brand_id"],
            summary["brand_status"],
            summary["test_image_id"],
            summary["test_image_status"],
        )
        return summary

    wait_for_brand >> test_generation
    report(wait_for_brand.output, test_generation.output)


bloom_brand_onboarding()
