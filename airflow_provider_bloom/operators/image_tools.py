"""Old home of the post-processing and library operators, kept so existing imports keep working.

The operators now live in :mod:`.images` (edit, resize, remove background, vectorize, next to
generate) and :mod:`.library` (upload, search, list, delete); the file helpers in :mod:`._files`.
"""

from __future__ import annotations

from airflow_provider_bloom.operators.images import (
    BloomEditImageOperator,
    BloomRemoveBackgroundOperator,
    BloomResizeImageOperator,
    BloomVectorizeImageOperator,
    EditImageOperator,
    RemoveBackgroundOperator,
    ResizeImageOperator,
    VectorizeImageOperator,
)
from airflow_provider_bloom.operators.library import (
    BloomDeleteImagesOperator,
    BloomListImagesOperator,
    BloomSearchImagesOperator,
    BloomUploadImageOperator,
    DeleteImagesOperator,
    ListImagesOperator,
    SearchImagesOperator,
    UploadImageOperator,
)

__all__ = [
    "BloomDeleteImagesOperator",
    "BloomEditImageOperator",
    "BloomListImagesOperator",
    "BloomRemoveBackgroundOperator",
    "BloomResizeImageOperator",
    "BloomSearchImagesOperator",
    "BloomUploadImageOperator",
    "BloomVectorizeImageOperator",
    "DeleteImagesOperator",
    "EditImageOperator",
    "ListImagesOperator",
    "RemoveBackgroundOperator",
    "ResizeImageOperator",
    "SearchImagesOperator",
    "UploadImageOperator",
    "VectorizeImageOperator",
]
