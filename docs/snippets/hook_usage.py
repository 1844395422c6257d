"""BloomHook used directly (in a ``@task``, a script or a notebook); ``tests/test_docs.py`` runs it."""

from __future__ import annotations

from typing import Any


def generate_and_wait() -> list[dict[str, Any]]:
    # [START howto_hook_generate_and_wait]
    from airflow_provider_bloom.hooks.bloom import BloomHook

    hook = BloomHook()  # bloom_conn_id="bloom_default"
    started = hook.generate_images("a red bicycle at dawn", aspect_ratio="16:9", variant_count=2)
    images = hook.wait_for_images(started["ids"], timeout=600)  # long-polls, <= 50 ids per request
    # [END howto_hook_generate_and_wait]
    return images
