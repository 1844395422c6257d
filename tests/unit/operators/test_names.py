"""One naming convention (``Bloom...``) for every operator and sensor, and the old names still import."""

from __future__ import annotations

import importlib
import inspect

import pytest
from airflow.sdk import BaseOperator

OPERATOR_MODULES = [
    "airflow_provider_bloom.operators.images",
    "airflow_provider_bloom.operators.library",
    "airflow_provider_bloom.operators.brands",
    "airflow_provider_bloom.operators.download",
    "airflow_provider_bloom.operators.credits",
    "airflow_provider_bloom.sensors.images",
    "airflow_provider_bloom.sensors.brands",
    "airflow_provider_bloom.sensors.credits",
]

# (module users imported from before the rename, old name, the class it must be now)
OLD_NAMES = [
    ("operators.images", "GenerateImageOperator", "BloomGenerateImageOperator"),
    ("operators.images", "EditImageOperator", "BloomEditImageOperator"),
    ("operators.images", "ResizeImageOperator", "BloomResizeImageOperator"),
    ("operators.images", "RemoveBackgroundOperator", "BloomRemoveBackgroundOperator"),
    ("operators.images", "VectorizeImageOperator", "BloomVectorizeImageOperator"),
    ("operators.images", "UploadImageOperator", "BloomUploadImageOperator"),
    ("operators.images", "SearchImagesOperator", "BloomSearchImagesOperator"),
    ("operators.images", "ListImagesOperator", "BloomListImagesOperator"),
    ("operators.images", "DeleteImagesOperator", "BloomDeleteImagesOperator"),
    ("operators.image_tools", "EditImageOperator", "BloomEditImageOperator"),
    ("operators.image_tools", "UploadImageOperator", "BloomUploadImageOperator"),
    ("operators.image_tools", "DeleteImagesOperator", "BloomDeleteImagesOperator"),
    ("operators.brands", "CreateBrandOperator", "BloomCreateBrandOperator"),
    ("operators.brands", "UpdateBrandLogoOperator", "BloomUpdateBrandLogoOperator"),
    ("operators.brands", "DeleteBrandOperator", "BloomDeleteBrandOperator"),
    ("operators.brands", "ListBrandsOperator", "BloomListBrandsOperator"),
    ("operators.download", "DownloadImagesOperator", "BloomDownloadImagesOperator"),
]


@pytest.mark.parametrize("module_name", OPERATOR_MODULES)
def test_every_operator_and_sensor_class_is_named_bloom(module_name: str) -> None:
    module = importlib.import_module(module_name)
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, BaseOperator) and obj.__module__ == module_name
    ]
    assert classes, f"no operator defined in {module_name}"
    for cls in classes:
        assert cls.__name__.startswith("Bloom") or cls.__name__.startswith("_"), cls.__name__


@pytest.mark.parametrize(("module", "old", "new"), OLD_NAMES)
def test_old_names_are_aliases_of_the_bloom_classes(module: str, old: str, new: str) -> None:
    imported = importlib.import_module(f"airflow_provider_bloom.{module}")
    cls = getattr(imported, old)
    assert cls.__name__ == new
    assert cls is getattr(importlib.import_module(cls.__module__), new)


def test_provider_info_names_the_bloom_classes() -> None:
    from airflow_provider_bloom import get_provider_info

    info = get_provider_info()
    names = [path for group in info["operators"] + info["sensors"] for path in group["python-modules"]]
    assert "airflow_provider_bloom.operators.library" in names
    for module_name in names:
        importlib.import_module(module_name)
