"""The README's layout table names every module of the package (#22), as its docstring describes it."""

from __future__ import annotations

from orthanc_harden import layout
from tests.conftest import ROOT


def test_the_readme_layout_table_is_current():
    text = (ROOT / "README.md").read_text()
    start, end = text.index(layout.BEGIN) + len(layout.BEGIN) + 1, text.index(layout.END)
    assert text[start:end] == layout.markdown_table(), "run: python -m orthanc_harden.layout --update-readme"


def test_every_module_has_a_row_that_says_what_it_is():
    table = layout.markdown_table()
    for path in layout.modules():
        name = path.relative_to(layout.PACKAGE.parent)
        shown = f"`{name.parent}/`" if path.name == "__init__.py" else f"`{name}`"
        assert shown in table, name
        assert layout.summary(path).strip(), f"{name}: no docstring (remote bodies: layout.REMOTE_BODIES)"
    remote = {p.name for p in (layout.PACKAGE / "remote").glob("*.py")}
    assert set(layout.REMOTE_BODIES) <= remote, set(layout.REMOTE_BODIES) - remote
