"""BloomHook used directly (in a ``@task``, a script or a notebook), and an operator of your own over it;
``tests/test_docs.py`` runs both."""

from __future__ import annotations

from typing import Any

# [START howto_bloom_own_operator]
from airflow_provider_bloom.tasks.base import BloomBaseOperator, bloom_errors


class BloomReadyBrandsOperator(BloomBaseOperator):
    """Push the names of the connection's ready brands."""

    def execute(self, context: Any) -> list[str]:
        with bloom_errors("Listing brands"):
            return [brand["name"] for brand in self.hook.iter_brands() if brand.get("status") == "ready"]


# [END howto_bloom_own_operator]


def generate_and_wait() -> list[dict[str, Any]]:
    # [START howto_hook_generate_and_wait]
    from airflow_provider_bloom.hooks.bloom import BloomHook

    hook = BloomHook()  # bloom_conn_id="bloom_default"
    started = hook.generate_images("a red bicycle at dawn", aspect_ratio="16:9", variant_count=2)
    images = hook.wait_for_images(started["ids"], timeout=600)  # long-polls, <= 50 ids per request
    # [END howto_hook_generate_and_wait]
    return images
