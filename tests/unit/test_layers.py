"""The folders are the layers, and imports run down them (checked on every import statement, lazy ones too).

    exceptions, openapi           the errors; Bloom's OpenAPI document
    logic/                        I/O-free, Airflow-free decisions (statuses, waits, pacing, reconcile,
                                  prices, batches); of the client it reads only the spec and retry rules
    client/                       Bloom's API with no Airflow: spec checks, the 23 operations, two transports
    hooks/                        the Airflow connection -> a client; the only way into Bloom for tasks
    triggers/                     the triggerer's side of waiting
    tasks/                        what operators and sensors share
    sensors/, operators/          DAG-facing; a sensor imports no operator module
    links, lineage, testing       Airflow-facing helpers; emulator/: Bloom's side, no Airflow

A module whose name starts with ``_`` is private to its folder: nothing outside that folder imports it.
Also: what a fresh interpreter really loads when the triggerer imports our triggers by class path, and that
operators, sensors and tasks/ reach Bloom only through the hook (nothing below it).
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

_PURE = {"exceptions", "openapi"}
_LOW = _PURE | {"logic", "client"}
#: For each area (a folder, or a module at the package root): the areas of ours it may import besides
#: itself. Of the client, logic/ reads only its two pure rule books: ``client.spec`` (limits such as 50
#: ids per request) and ``client.retry`` (what is transient, how long to back off). The emulator reads
#: ``client.spec`` for one list only, the operations never sent twice, so that both sides count the same.
ALLOWED: dict[str, set[str]] = {
    "__init__": {"hooks.connection"},
    "exceptions": set(),
    "openapi": set(),
    "logic": _PURE | {"client.spec", "client.retry"},
    "client": _LOW | {"__init__"},
    "hooks": _LOW,
    "triggers": _LOW | {"hooks"},
    "tasks": _LOW | {"hooks", "triggers", "links", "lineage"},
    "sensors": _LOW | {"hooks", "triggers", "tasks", "links"},
    "operators": _LOW | {"hooks", "triggers", "tasks", "links", "lineage"},
    "links": _LOW,
    "lineage": _LOW | {"tasks"},
    "testing": _LOW | {"hooks"},
    "emulator": _PURE | {"logic", "testing", "client.spec"},
}
#: Areas that import no Airflow at all: the same decisions in a worker, a triggerer and the emulator.
NO_AIRFLOW = {"exceptions", "openapi", "logic", "client", "emulator"}


def area_of(module: str) -> str:
    """The area of a module of ours: its folder under the package, or the root module's own name."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__"
    return parts[0]


def allowed(source_area: str, target: str) -> bool:
    """Whether a module in ``source_area`` may import the module ``target`` of ours."""
    target_area = area_of(target)
    if target_area == source_area:
        return True
    rest = target.split(".")[1:]
    return any(
        grant == target_area or (len(rest) > 1 and grant == f"{rest[0]}.{rest[1]}")
        for grant in ALLOWED[source_area]
    )


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_files(root: Path = ROOT) -> list[Path]:
    files = sorted((root / PACKAGE).rglob("*.py"))
    assert files, f"no modules found under {root / PACKAGE}"
    return files


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


def is_module(module: str, root: Path = ROOT) -> bool:
    """Whether ``module`` is a module or package of ours under ``root`` (not a name imported from one)."""
    path = root.joinpath(*module.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def private_home(module: str, root: Path = ROOT) -> str | None:
    """The folder a private module (``_name``) in ``module``'s path belongs to, if any."""
    parts = module.split(".")
    for i, part in enumerate(parts[1:], start=1):
        if part.startswith("_") and not part.startswith("__") and is_module(".".join(parts[: i + 1]), root):
            return ".".join(parts[:i])
    return None


def violations(path: Path, root: Path = ROOT) -> list[str]:
    """Every import in ``path`` that goes up or sideways, reaches into another folder's private module,
    or (in an Airflow-free area) imports Airflow."""
    name = module_name(path, root)
    area = area_of(name)
    bad = []
    for line, module, _names in imports_of(path, root):
        where = f"{path.relative_to(root)}:{line}"
        top = module.split(".")[0]
        if top == "airflow" and area in NO_AIRFLOW:
            bad.append(f"{where} imports Airflow ({module}) in {area}/, which must not")
        if top != PACKAGE or module == PACKAGE or not is_module(module):
            continue
        if not allowed(area, module):
            bad.append(f"{where}: {area} may not import {module}")
        home = private_home(module)
        if home is not None and not name.startswith(home + "."):
            bad.append(f"{where}: {module} is private to {home}")
    return bad


@pytest.mark.parametrize("path", package_files(), ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_run_down_the_layers(path: Path) -> None:
    assert violations(path) == []


def test_every_folder_has_a_layer() -> None:
    """A new folder or root module must be placed in the layers above before it can pass."""
    areas = {area_of(module_name(path)) for path in package_files()}
    assert areas - set(ALLOWED) == set()


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
    """The AST check sees every form of a wrong import, including a lazy one and a relative one."""
    cases = {
        "triggers/images.py": [
            "from airflow_provider_bloom.tasks.waiting import images_from_event",
            "import airflow_provider_bloom.sensors.images",
            "from airflow_provider_bloom import operators",
            "from ..sensors import brands",
            "def later():\n    from airflow_provider_bloom.operators import images",
        ],
        "sensors/images.py": [
            "from airflow_provider_bloom.operators.credits import prompt_count",
            "from airflow_provider_bloom.operators._batch import storage_path",
        ],
        "logic/waiting.py": [
            "from airflow.sdk import BaseOperator",
            "from airflow_provider_bloom.client.transport import BloomClient",
            "from airflow_provider_bloom.hooks.bloom import BloomHook",
        ],
        "client/core.py": ["import airflow.sdk", "from airflow_provider_bloom.hooks import bloom"],
        "hooks/bloom.py": ["from airflow_provider_bloom.triggers._base import BloomWaitTrigger"],
        "emulator/state.py": ["from airflow_provider_bloom.client.core import PreparedCall"],
    }
    for relative, forms in cases.items():
        missed, clean = planted(tmp_path, relative, violations, forms)
        assert missed == [], relative
        assert clean == [], relative


#: What the triggerer must never load: the worker-side modules.
FORBIDDEN_FOR_TRIGGERER = tuple(f"{PACKAGE}.{area}" for area in ("operators", "sensors", "tasks"))

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
    ours = [m for m in modules["loaded"] if m.startswith(FORBIDDEN_FOR_TRIGGERER)]
    assert ours == []
    added = [m for m in modules["new"] if m.startswith("airflow") and ("operator" in m or "sensor" in m)]
    assert added == []


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
