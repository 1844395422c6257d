"""Snippets of the refusals how-to (docs/howto/refusals.md), run by the tests
(tests/unit/operators/test_batch_refusals.py, tests/unit/operators/test_refusals_credits.py)."""

from __future__ import annotations

from typing import Any

from airflow_provider_bloom.operators.batch import BloomGenerateBatchOperator
from airflow_provider_bloom.operators.images import BloomGenerateImageOperator


def regenerating_batch(rows: Any, output_path: str, **kwargs: Any) -> BloomGenerateBatchOperator:
    """A generation batch that makes refused rows again (see the how-to)."""
    # [START regenerate_batch]
    generate = BloomGenerateBatchOperator(
        task_id="generate",
        rows=rows,
        output_path=output_path,
        # A row whose images Bloom failed for content_safety is sent again on "standard" (Bloom's
        # advice); one failed as rate_limited is sent again on the same model after retry_pause.
        on_refused="regenerate",
        fallback_models=["standard"],
        max_attempts=3,  # per row, the first request included
        **kwargs,
    )
    # [END regenerate_batch]
    return generate


def regenerating_image(prompt: str, **kwargs: Any) -> BloomGenerateImageOperator:
    """One image, made again when refused (see the how-to)."""
    # [START regenerate_image]
    image = BloomGenerateImageOperator(
        task_id="hero_image",
        prompt=prompt,
        image_size="4K",
        wait_for_completion=True,  # a refusal is known once the image has ended
        on_refused="regenerate",
        max_credits=6,  # at most three 4K attempts
        **kwargs,
    )
    # [END regenerate_image]
    return image
