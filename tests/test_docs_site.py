"""The Sphinx site of docs/ builds with warnings as errors, and each
criterion page's generated flag table lists every flag of the criterion's
dataclass config: a new field shows up without editing the page."""

import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
CRITERION_PAGES = ("ot_seq", "cot", "scheduled_sampling", "gjs", "distill")
# ```{flag-table} NAME``` not followed by a :registry: option: a criterion's table
CRITERION_DIRECTIVE = re.compile(r"^```\{flag-table\}\s+(\S+)\s*\n(?!:registry:)", re.MULTILINE)

for module in ("sphinx", "myst_parser", "furo"):
    pytest.importorskip(module, reason=f"the docs site needs {module}: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs_html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"sphinx-build -W failed:\n{(result.stdout + result.stderr)[-6000:]}"
    return out


def criterion_config(name):
    import fairseq_ot  # noqa: F401  (registers the criterions)
    from fairseq.criterions import CRITERION_DATACLASS_REGISTRY

    return CRITERION_DATACLASS_REGISTRY[name]


def expected_flags(name):
    """Every flag of the criterion's dataclass but fairseq's `_name` and the
    fields that mirror a global flag (`${common.seed}`)."""
    return {
        "--" + f.name.replace("_", "-")
        for f in dataclasses.fields(criterion_config(name))
        if not f.name.startswith("_") and not (isinstance(f.default, str) and f.default.startswith("${"))
    }


def table_rows(page_html, anchor):
    """The cells of each body row of the table under the element with id `anchor`."""
    start = page_html.find(f'id="{anchor}"')
    assert start >= 0, f"no flag table #{anchor}"
    table = page_html[start:page_html.index("</table>", start)]
    body = table[table.index("<tbody>"):]
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.DOTALL):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells])
    return rows


def test_site_has_a_page_per_criterion_and_the_api(site):
    for name in CRITERION_PAGES:
        assert (site / "criteria" / f"{name}.html").is_file(), name
    api = (site / "api.html").read_text()
    for function in ("optimal_transport.solve_ot", "optimal_transport.ipot", "optimal_transport.sinkhorn",
                     "soft_embedding.sequence_ot_distance", "soft_embedding.soft_embed",
                     "divergences.js_beta", "divergences.step_kl"):
        assert f'id="fairseq_ot.modules.{function}"' in api, function
    # the objectives are math for MathJax, loaded by the browser, not at build time
    ot_seq = (site / "criteria" / "ot_seq.html").read_text()
    assert 'class="math' in ot_seq and "mathjax" in ot_seq.lower()
    # docs/ holds pages only: each Markdown file is a page, and nothing else is
    built = {path.relative_to(site).with_suffix("").as_posix() for path in site.glob("**/*.html")
             if not path.relative_to(site).parts[0].startswith("_")}
    sources = {path.relative_to(DOCS).with_suffix("").as_posix() for path in DOCS.glob("**/*.md")
               if "_build" not in path.parts}
    assert built - {"genindex", "search", "py-modindex"} == sources


@pytest.mark.parametrize("page", CRITERION_PAGES)
def test_criterion_page_lists_every_flag_of_its_dataclass(site, page):
    source = (DOCS / "criteria" / f"{page}.md").read_text()
    names = CRITERION_DIRECTIVE.findall(source)
    assert page in names, f"docs/criteria/{page}.md has no flag-table of {page}"
    page_html = (site / "criteria" / f"{page}.html").read_text()
    for name in names:
        rows = table_rows(page_html, "flags-criterion-" + name.replace("_", "-"))
        flags = [row[0] for row in rows]
        assert sorted(flags) == sorted(expected_flags(name)), name
        assert all(len(row) == 4 and row[1] for row in rows), rows  # flag, default, values, help
    # a ChoiceEnum field lists its choices, from the code
    choices = {
        f.name: [str(member.value) for member in f.type]
        for f in dataclasses.fields(criterion_config(page))
        if isinstance(f.type, type) and hasattr(f.type, "__members__")
    }
    rows = {row[0]: row for row in table_rows(page_html, "flags-criterion-" + page.replace("_", "-"))}
    for field_name, values in choices.items():
        assert rows["--" + field_name.replace("_", "-")][2] == " | ".join(values)


def test_every_registered_criterion_of_the_plugin_has_a_page():
    """A criterion registered later needs a page: docs/criteria/NAME.md with
    a title and ```{flag-table} NAME```."""
    import fairseq_ot  # noqa: F401
    from fairseq.criterions import CRITERION_REGISTRY

    registered = {name for name, cls in CRITERION_REGISTRY.items() if cls.__module__.startswith("fairseq_ot.")}
    documented = set()
    for page in (DOCS / "criteria").glob("*.md"):
        documented.update(CRITERION_DIRECTIVE.findall(page.read_text()))
    assert registered - documented == set(), "criteria without a docs/criteria page"
