"""Imports run down the layers: the lower layers never import operators, sensors or the task layer.

The lower layers are what the triggerer and the hook load: hooks/, triggers/, logic/ (the I/O-free
decisions), client/ (Bloom's API) and the errors. They import nothing from ``operators/``,
``sensors/`` or ``tasks/`` (not even lazily inside a function), so that the triggerer never loads an
operator, and a change to an operator cannot break a running wait.

Two checks: every import statement of those modules (parsed, so lazy imports count too), and what a
fresh interpreter really loads when the triggerer imports our triggers by their class path. A third
holds the task layers (operators, sensors, tasks/) to the hook: nothing below it.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_bloom"
ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / PACKAGE

#: The modules below operators, sensors and the task layer.
LOWER_LAYERS = ["hooks/*.py", "triggers/*.py", "logic/**/*.py", "client/*.py", "exceptions.py"]
#: What those modules may not import: our upper layers, and Airflow's operator classes.
FORBIDDEN_MODULES = (f"{PACKAGE}.operators", f"{PACKAGE}.sensors", f"{PACKAGE}.tasks")
FORBIDDEN_NAMES = {"BaseOperator", "BaseSensorOperator"}
#: Modules that are pure logic: no Airflow at all (the same decisions in a worker and a triggerer).
PURE = ["logic/**/*.py", "client/*.py", "exceptions.py"]


def lower_layer_files() -> list[Path]:
    files = sorted({path for pattern in LOWER_LAYERS for path in SOURCE.glob(pattern)})
    assert files, f"no modules found under {SOURCE}"
    return files


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = ROOT) -> list[tuple[int, str, set[str]]]:
    """Every import in ``path`` as (line, absolute module, imported names), wherever it stands."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: list[tuple[int, str, set[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, set()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = {alias.name for alias in node.names}
            found.append((node.lineno, base, names))
            # ``from airflow_provider_bloom import operators`` imports a submodule
            found.extend((node.lineno, f"{base}.{name}", set()) for name in names)
    return found


def violations(path: Path, root: Path = ROOT) -> list[str]:
    bad = []
    for line, module, names in imports_of(path, root):
        where = f"{path.relative_to(root)}:{line}"
        if any(module == top or module.startswith(top + ".") for top in FORBIDDEN_MODULES):
            bad.append(f"{where} imports {module}")
        if names & FORBIDDEN_NAMES:
            bad.append(f"{where} imports {sorted(names & FORBIDDEN_NAMES)} from {module}")
    return bad


@pytest.mark.parametrize("path", lower_layer_files(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_lower_layers_import_no_operator_or_sensor(path: Path) -> None:
    assert violations(path) == []


def pure_files() -> list[str]:
    files = sorted({str(path.relative_to(SOURCE)) for pattern in PURE for path in SOURCE.glob(pattern)})
    assert files, f"no modules found under {SOURCE}"
    return files


@pytest.mark.parametrize("name", pure_files())
def test_pure_modules_import_no_airflow(name: str) -> None:
    found = [f"{name}:{line} {module}" for line, module, _ in imports_of(SOURCE / name)]
    assert [f for f in found if f.split()[-1].split(".")[0] == "airflow"] == []


def planted(
    tmp_path: Path, module: str, check: Callable[[Path, Path], list[str]], forms: list[str], tail: str = ""
) -> tuple[list[str], list[str]]:
    """Plant each of ``forms`` in a copy of ``module`` (a path below the package) and run ``check``:
    return the forms it missed, and what it finds in the copy with only ``tail`` added."""
    original = (SOURCE / module).read_text()
    copy = tmp_path / PACKAGE / module
    copy.parent.mkdir(parents=True, exist_ok=True)
    missed = []
    for form in forms:
        copy.write_text(original + "\n" + form + "\n")
        if not check(copy, tmp_path):
            missed.append(form)
    copy.write_text(original + "\n" + tail + "\n")
    return missed, check(copy, tmp_path)


def test_the_checks_catch_an_upward_import(tmp_path: Path) -> None:
    """The AST check sees every form of an upward import, including a lazy one and a relative one."""
    forms = [
        "from airflow_provider_bloom.tasks.base import bloom_errors",
        "import airflow_provider_bloom.sensors.images",
        "from airflow_provider_bloom import operators",
        "from ..sensors import brands",
        "def later():\n    from airflow_provider_bloom.operators import images",
        "from airflow.sdk import BaseOperator",
    ]
    missed, clean = planted(tmp_path, "triggers/images.py", violations, forms)
    assert missed == []
    assert clean == []


#: The task layers (operators, sensors, and what they share): they reach Bloom only through the hook.
HOOK_USERS = ["operators/*.py", "sensors/*.py", "tasks/*.py"]
#: What lies below the hook: the transports and the HTTP libraries under them.
BELOW_THE_HOOK = (f"{PACKAGE}.client.transport", "requests", "urllib3", "httpx")
#: The hook's attributes that hand out a client.
CLIENT_ATTRIBUTES = {"client", "single_try_client"}


def hook_user_files() -> list[Path]:
    files = sorted({path for pattern in HOOK_USERS for path in SOURCE.glob(pattern)})
    assert files, f"no modules found under {SOURCE}"
    return files


def around_the_hook(path: Path, root: Path = ROOT) -> list[str]:
    """Every import of what lies below the hook (lazy and type-only ones too) and every ``.client``
    or ``.single_try_client`` attribute read in ``path``."""
    where = path.relative_to(root)
    bad = [
        f"{where}:{line} imports {module}"
        for line, module, _ in imports_of(path, root)
        if any(module == top or module.startswith(top + ".") for top in BELOW_THE_HOOK)
    ]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and node.attr in CLIENT_ATTRIBUTES:
            bad.append(f"{where}:{node.lineno} reads .{node.attr}")
    return bad


@pytest.mark.parametrize("path", hook_user_files(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_operators_sensors_and_tasks_go_through_the_hook(path: Path) -> None:
    """Operators, sensors and the task layer call hook methods only: no transport, no HTTP library,
    no client taken from the hook (type-only imports of client types such as ``PreparedCall`` are fine)."""
    assert around_the_hook(path) == []


def test_the_checks_catch_a_way_around_the_hook(tmp_path: Path) -> None:
    """The hook check sees each way around the hook, lazy ones included, and passes the module as it is."""
    forms = [
        "import requests",
        "from airflow_provider_bloom.client.transport import BloomClient",
        "from airflow_provider_bloom.client import transport",
        "from ..client.transport import BloomClient",
        "def later():\n    import httpx",
        "import urllib3.exceptions",
        "def send(self, call):\n    return self.hook.client.execute(call)",
        "def send(self):\n    return self.hook.single_try_client(connections=2)",
    ]
    allowed = "if TYPE_CHECKING:\n    from airflow_provider_bloom.client.core import PreparedCall"
    missed, clean = planted(tmp_path, "operators/brands.py", around_the_hook, forms, allowed)
    assert missed == []
    assert clean == []


PROBE = """
import importlib, json, sys
import airflow.triggers.base  # Airflow's own trigger base: what it loads is not ours to judge
before = set(sys.modules)
for path in sys.argv[1:]:  # as the triggerer loads a trigger from its serialized class path
    module, _, name = path.rpartition(".")
    getattr(importlib.import_module(module), name)
print(json.dumps({"loaded": sorted(sys.modules), "new": sorted(set(sys.modules) - before)}))
"""


def test_the_triggerer_loads_no_operator_or_sensor() -> None:
    """A fresh interpreter that loads our triggers by class path loads no operator or sensor module.

    Airflow 3.3's ``airflow.triggers.base`` itself loads ``airflow.sdk.bases.operator``; what our
    imports add on top of it must hold no operator or sensor module at all.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    classes = [
        f"{PACKAGE}.triggers.images.BloomImagesTrigger",
        f"{PACKAGE}.triggers.brands.BloomBrandTrigger",
    ]
    command = [sys.executable, "-c", PROBE, *classes]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"{PACKAGE}.triggers.images" in modules["new"]  # the probe did load our triggers
    ours = [m for m in modules["loaded"] if m.startswith(FORBIDDEN_MODULES)]
    assert ours == []
    added = [m for m in modules["new"] if m.startswith("airflow") and ("operator" in m or "sensor" in m)]
    assert added == []
