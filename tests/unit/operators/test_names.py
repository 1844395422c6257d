"""One naming convention (``Bloom...``) for every operator and sensor, each under one name in one module."""

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


@pytest.mark.parametrize("module_name", OPERATOR_MODULES)
def test_each_class_has_one_name_and_one_home(module_name: str) -> None:
    """No aliases and no re-exports (the package was never released, so no old name is owed): every
    operator or sensor a module offers is defined there, under its own ``Bloom...`` name."""
    module = importlib.import_module(module_name)
    offered = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseOperator)
        and obj.__module__.startswith("airflow_provider")
    }
    assert {name: obj.__name__ for name, obj in offered.items() if obj.__name__ != name} == {}
    exported = [name for name in getattr(module, "__all__", []) if name in offered]
    assert [name for name in exported if offered[name].__module__ != module_name] == []


def test_provider_info_names_the_bloom_classes() -> None:
    from airflow_provider_bloom import get_provider_info

    info = get_provider_info()
    names = [path for group in info["operators"] + info["sensors"] for path in group["python-modules"]]
    assert "airflow_provider_bloom.operators.library" in names
    for module_name in names:
        importlib.import_module(module_name)
