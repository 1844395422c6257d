"""Sphinx configuration of the airflow-provider-bloom documentation (``make docs``, warnings are errors)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's package, for autodoc and the version

from airflow_provider_bloom import __version__  # noqa: E402

project = "airflow-provider-bloom"
author = "airflow-provider-bloom developers"
copyright = "airflow-provider-bloom developers, Apache-2.0"  # noqa: A001
version = release = __version__

extensions = [
    "myst_parser",  # the pages are Markdown (MyST); docs/README.md says why
    "sphinx.ext.autodoc",  # the API reference, from the docstrings
    "sphinx.ext.viewcode",  # "[source]" links next to each class in the API reference
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "snippets/README.md"]

# MyST: heading anchors for links like [the wait hub](deployment.md#waiting-at-scale-the-wait-hub),
# `:::` fences and definition lists.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Pages other contributors add under howto/ are picked up by the how-to toctree's glob; a page that is in
# no toctree (a draft, an include) must not fail the -W build.
suppress_warnings = ["toc.not_included"]

autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # not BaseOperator's long docstring under every operator

# Sphinx's own theme (alabaster), with the whole table of contents in the sidebar of every page: any
# how-to is two clicks from anywhere. docs/README.md says why there is no other theme.
html_theme = "alabaster"
html_theme_options = {
    "description": "Apache Airflow provider for Bloom's image-generation API",
    "fixed_sidebar": True,
    "sidebar_collapse": False,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_title = f"airflow-provider-bloom {__version__}"
