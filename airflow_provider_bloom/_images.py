"""Kept for earlier imports: the image record helpers live in :mod:`airflow_provider_bloom.records`.

``slim_record`` here returns a plain ``dict`` for the callers not yet typed with
:class:`~airflow_provider_bloom.records.ImageRecord`; new code imports from ``records``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_provider_bloom import records
from airflow_provider_bloom.records import IMAGE_RECORD_FIELDS, flatten_image_ids, is_terminal

__all__ = ["IMAGE_RECORD_FIELDS", "flatten_image_ids", "is_terminal", "slim_record"]


def slim_record(record: Mapping[str, Any], *, include_urls: bool = False) -> dict[str, Any]:
    return dict(records.slim_record(record, include_urls=include_urls))
