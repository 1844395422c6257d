"""The client layer's promises about HTTP: one library, in one module.

Only ``client/transport.py`` imports an HTTP library (the emulator, a separate server, aside): the
hook, the operators (downloads included), the ledger's reconciler and the triggers reach HTTP through
the client's own API (``open_download``'s :class:`Download`, ``observe_answers``), never a library's
objects. And that library is httpx alone: ``requests``/``urllib3`` are imported nowhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "airflow_provider_bloom"
HTTP_LIBRARIES = {"httpx", "httpcore", "h11", "requests", "urllib3"}
TRANSPORT = PACKAGE / "client" / "transport.py"


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_transport_imports_an_http_library():
    modules = [p for p in PACKAGE.rglob("*.py") if "emulator" not in p.relative_to(PACKAGE).parts]
    found = {
        str(p.relative_to(PACKAGE)): sorted(imported_roots(p) & HTTP_LIBRARIES)
        for p in modules
        if p != TRANSPORT
    }
    assert {name: libs for name, libs in found.items() if libs} == {}


def test_both_transports_use_one_library():
    assert imported_roots(TRANSPORT) & HTTP_LIBRARIES == {"httpx"}
