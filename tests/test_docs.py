"""The docs site: it builds with warnings as errors, documents every public class, shows only tested code.

The site is built the way ``make docs`` builds it (``sphinx-build -W``, fresh). When ``make docs`` has just
built it (``make test`` does, before pytest) and nothing under ``docs/`` or the package changed since, its
output is read instead of building a second time.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_bloom import get_provider_info
from tests.helpers import REPO, conn_json

DOCS = REPO / "docs"
BUILD = DOCS / "_build" / "html"
BUILT_OK = DOCS / "_build" / ".built-ok"  # written by `make docs` after a build without warnings
SNIPPETS = DOCS / "snippets"
#: The command of `make docs` (the Makefile runs the same): fresh (-E), warnings are errors.
SPHINX_BUILD = ["-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going", "-q"]


def _sources() -> list[Path]:
    files = [p for p in DOCS.rglob("*") if p.is_file() and not {"_build", "__pycache__"} & set(p.parts)]
    files += list((REPO / "airflow_provider_bloom").rglob("*.py"))
    files += list((REPO / "dags_examples").glob("*.py"))
    return files


@pytest.fixture(scope="module")
def built_docs(tmp_path_factory) -> Path:
    """The HTML site, built with -W: `make docs`'s output when it is newer than every source, else anew."""
    if BUILT_OK.exists() and all(p.stat().st_mtime <= BUILT_OK.stat().st_mtime for p in _sources()):
        return BUILD
    out = tmp_path_factory.mktemp("docs-html")
    result = subprocess.run(
        [sys.executable, *SPHINX_BUILD, str(DOCS), str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"`make docs` fails (warnings are errors):\n{result.stderr[-6000:]}"
    return out


def _inventory(site: Path) -> set[str]:
    from sphinx.util.inventory import InventoryFile

    with (site / "objects.inv").open("rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    data = inventory.data if hasattr(inventory, "data") else inventory  # Sphinx >= 8.2 / older
    return {name for kind, objects in data.items() if kind.startswith("py:") for name in objects}


def _public_classes() -> dict[str, type]:
    """Every public operator, sensor, trigger and hook: the provider info's modules and the subpackages'."""
    from airflow.sdk import BaseHook, BaseOperator
    from airflow.triggers.base import BaseTrigger

    info = get_provider_info()
    modules = {
        m
        for group in ("hooks", "operators", "sensors", "triggers")
        for e in info[group]
        for m in e["python-modules"]
    }
    for sub in ("hooks", "operators", "sensors", "triggers"):
        package = importlib.import_module(f"airflow_provider_bloom.{sub}")
        modules |= {
            f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.ispkg
        }
    found: dict[str, type] = {}
    for name in sorted(modules):
        if any(part.startswith("_") for part in name.split(".")):
            continue
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__name__.startswith("_") or not obj.__module__.startswith("airflow_provider_bloom."):
                continue
            if any(part.startswith("_") for part in obj.__module__.split(".")):
                continue  # a private module's class, e.g. a base class in operators/_batch.py
            if issubclass(obj, (BaseOperator, BaseTrigger, BaseHook)) and not inspect.isabstract(obj):
                found[f"{obj.__module__}.{obj.__name__}"] = obj
    return found


def test_the_public_classes_are_found():
    names = {path.rsplit(".", 1)[1] for path in _public_classes()}
    expected = {"BloomHook", "BloomGenerateImageOperator", "BloomImageSensor", "BloomImagesTrigger"}
    assert expected <= names, names  # the enumeration itself works
    assert len(names) >= 25, names


def test_the_docs_build_with_warnings_as_errors(built_docs):
    assert (built_docs / "index.html").exists()
    for page in ("connection", "emulator", "deployment", "guarantees", "benchmarks", "api", "changelog"):
        assert (built_docs / f"{page}.html").exists(), page
    howtos = {p.stem for p in (DOCS / "howto").glob("*.md")}
    index = (built_docs / "index.html").read_text()
    for stem in howtos:  # the how-to toctree is a glob: every page under howto/ is linked from the front page
        assert f'href="howto/{stem}.html"' in index, f"docs/howto/{stem}.md is not in the how-to toctree"


def test_every_public_class_is_in_the_api_reference(built_docs):
    documented = _inventory(built_docs)
    missing = [path for path in _public_classes() if path not in documented]
    assert not missing, "\n".join(
        f"{path} is not in the API reference: add `.. automodule:: {path.rsplit('.', 1)[0]}` to docs/api.md "
        "(it documents every public class of the module) and give the class a docstring"
        for path in missing
    )


def test_every_public_class_has_a_how_to():
    pages = {p: p.read_text() for p in sorted((DOCS / "howto").glob("*.md"))}
    missing = [
        path
        for path in _public_classes()
        if not any(re.search(rf"\b{path.rsplit('.', 1)[1]}\b", text) for text in pages.values())
    ]
    assert not missing, "\n".join(
        f"{path.rsplit('.', 1)[1]} ({path}) is in no how-to guide: add a section naming it to a page of "
        "docs/howto/ (a new page there is picked up by the toctree's glob), with its example included by "
        "```{literalinclude} from an example DAG or a snippet in docs/snippets/ "
        "between # [START x] / # [END x]"
        for path in missing
    )


def test_no_code_block_in_the_docs_is_untested():
    """Python shown in the docs comes from tested files (literalinclude), never a block typed into a page."""
    pages = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)
    inline = [
        f"{page.relative_to(REPO)}:{n}"
        for page in pages
        for n, line in enumerate(page.read_text().splitlines(), 1)
        if re.match(r"\s*(```|:::)\s*(\{code-block\}\s*)?(python|py|python3)\s*$", line)
    ]
    assert not inline, (
        "Python blocks written in a docs page (untested): move the code into docs/snippets/ or an example "
        "DAG between # [START x] / # [END x] markers and include it with ```{literalinclude}: "
        + ", ".join(inline)
    )


def test_every_include_has_its_markers():
    for page in sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts):
        for block in re.findall(r"```\{literalinclude\} (\S+)\n(.*?)```", page.read_text(), re.DOTALL):
            path, options = block
            source = (page.parent / path).resolve()
            assert source.is_file(), f"{page.relative_to(REPO)} includes {path}, which does not exist"
            for marker in re.findall(r":(?:start-after|end-before): (.+)", options):
                where = f"{page.relative_to(REPO)}: {marker} not in {path}"
                assert marker.strip() in source.read_text(), where


def test_the_snippets_parse_as_dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(SNIPPETS))
    assert not bag.import_errors, bag.import_errors
    assert {
        "bloom_hello",
        "bloom_docs_images",
        "bloom_docs_brands",
        "bloom_docs_batch",
        "bloom_docs_review_pages",
    } <= set(bag.dag_ids)


def test_the_hook_snippet_runs(bloom_conn):
    sys.path.insert(0, str(SNIPPETS))
    try:
        hook_usage = importlib.import_module("hook_usage")
    finally:
        sys.path.remove(str(SNIPPETS))
    images = hook_usage.generate_and_wait()
    assert [image["status"] for image in images] == ["completed", "completed"]
    assert bloom_conn.requests()["paid_posts"] == 1


def test_the_own_operator_snippet_runs_and_fails_clearly(bloom_conn, monkeypatch):
    """The how-to's own operator reads through its hook, and a refused key fails the task for good."""
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_bloom.hooks.bloom import BloomHook

    sys.path.insert(0, str(SNIPPETS))
    try:
        hook_usage = importlib.import_module("hook_usage")
    finally:
        sys.path.remove(str(SNIPPETS))
    names = hook_usage.BloomReadyBrandsOperator(task_id="names").execute({})
    listed = BloomHook().list_brands()["brands"]
    assert names and names == [b["name"] for b in listed if b["status"] == "ready"]
    monkeypatch.setenv("AIRFLOW_CONN_BLOOM_DEFAULT", conn_json(bloom_conn.base_url, "not-a-bloom-key"))
    with pytest.raises(AirflowFailException, match="Listing brands failed"):
        hook_usage.BloomReadyBrandsOperator(task_id="names").execute({})


def test_the_version_is_the_changelogs_newest_and_the_provider_infos():
    """Apache providers' convention: one section per release in the changelog, newest first."""
    from airflow_provider_bloom import __version__

    sections = re.findall(r"^## (\S+)\s*$", (DOCS / "changelog.md").read_text(), re.MULTILINE)
    assert sections and sections[0] == __version__, (
        f"docs/changelog.md's newest section is {sections[:1]}, the package is {__version__}: "
        f"add a '## {__version__}' section at the top"
    )
    assert get_provider_info()["versions"][0] == __version__
    assert 'dynamic = ["version"]' in (REPO / "pyproject.toml").read_text()  # read from __version__
