"""Old home of the post-processing and library operators, kept so existing imports keep working.

The operators now live in :mod:`.images` (edit, resize, remove background, vectorize, next to
generate) and :mod:`.library` (upload, search, list, delete); :mod:`.images` exports them all, under
their ``Bloom...`` names and the old ones.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from airflow_provider_bloom.operators import images

    return getattr(images, name)
