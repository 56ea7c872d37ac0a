"""Sphinx configuration of the fairseq-ot documentation site.

Build (warnings are errors, as tests/test_docs_site.py builds it):

    python -m sphinx -W -b html docs docs/_build/html

Nothing is fetched at build time: MathJax is only referenced by the HTML
pages, and the browser loads it when a page is shown.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))
sys.path.insert(0, os.path.dirname(HERE))  # the repository: fairseq_ot without an install

project = "fairseq-ot"
author = "fairseq-ot contributors"
copyright = "fairseq-ot contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "flag_table",
]

# Results, benchmark JSON and figures live under results/, not here; the
# pages are listed, so that a stray Markdown file is not silently published
# (tests/test_docs_site.py also asserts docs/ holds pages only).
include_patterns = [
    "index.md", "usage.md", "criteria/*.md", "tasks.md", "distill.md", "precision.md",
    "errors.md", "benchmarks.md", "patches.md", "development.md", "api.md",
]
exclude_patterns = ["_build", "_ext", "**/.*"]

source_suffix = {".md": "markdown"}
root_doc = "index"

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# "--ot-weight" stays two hyphens (no en dash) in the text of every page
smartquotes = False
# `name` in the docstrings is code
default_role = "code"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "undoc-members": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = "fairseq-ot"
