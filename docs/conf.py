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

# docs/ also holds generated data (results tables, benchmark JSON, figures,
# docs/multi30k_distill/...): those files stay where the scripts write them,
# and only the pages below are sources of the site. A whitelist, so that a
# new results table written into docs/ does not become an orphan page (a
# warning, thus an error under -W).
include_patterns = ["index.md", "api.md", "distill.md", "criteria/*.md"]
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
