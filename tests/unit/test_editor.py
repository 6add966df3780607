"""The comment-preserving editor (runs on hosts): properties over generated JSON-with-comments documents."""

from __future__ import annotations

import json

import json5
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orthanc_harden.remote import orthanc_config as oc

keys = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
scalars = st.one_of(st.booleans(), st.integers(-10**6, 10**6), st.none(),
                    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=20))
values = st.one_of(scalars, st.dictionaries(keys, st.text(max_size=20), max_size=4), st.lists(scalars, max_size=3))
comments = st.sampled_from(["", " // note with \"quotes\" and { braces", " /* block */", " /* a */ // b", "\n  // x"])
spaces = st.sampled_from([" ", "", "  ", "\t"])


def _dump(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def _gains_one_comma(candidate: str, line: str) -> bool:
    return len(candidate) == len(line) + 1 and any(
        candidate[i] == "," and candidate[:i] + candidate[i + 1:] == line for i in range(len(candidate)))


@st.composite
def documents(draw):
    members = draw(st.dictionaries(keys, values, max_size=6))
    parts = []
    for index, (key, value) in enumerate(members.items()):
        comma = "," if index < len(members) - 1 else ""
        sep = draw(spaces)
        parts.append(f"  {_dump(key)}{sep}:{sep}{_dump(value)}{comma}{draw(comments)}")
    head = draw(st.sampled_from(["{", "/* header */\n{", "// top\n{"]))
    return head + "\n" + "\n".join(parts) + "\n}\n", members


@settings(max_examples=300, deadline=None)
@given(documents(), keys, values)
def test_set_key_changes_exactly_one_key(doc, key, value):
    text, members = doc
    edited = oc.set_key(text, key, value)
    assert json5.loads(edited) == {**members, key: value}
    assert oc.parse_config(edited) == {**members, key: value}  # the host-side parser agrees
    assert oc.set_key(edited, key, value) == edited  # idempotent, byte for byte


@settings(max_examples=200, deadline=None)
@given(documents(), keys, values)
def test_untouched_lines_and_comments_survive(doc, key, value):
    text, members = doc
    edited = oc.set_key(text, key, value)
    kept = [line for line in text.splitlines() if _dump(key) not in line]
    edited_lines = edited.splitlines()
    for line in kept:
        # An untouched line is still there, or gained exactly the comma a new last member needs.
        assert line in edited_lines or any(_gains_one_comma(candidate, line) for candidate in edited_lines), line
    for marker in ("// note", "/* block */", "/* header */", "// top"):
        assert edited.count(marker) == text.count(marker)


@pytest.mark.parametrize("password", ['"', "\\", "*/", "//", "/*", "é€😀", "line\nbreak", "\u0000x", "'"])
def test_hostile_passwords_round_trip(password):
    text = '{\n  // users\n  "RegisteredUsers" : {\n    // "alice" : "x"\n  }\n}\n'
    edited = oc.set_key(text, "RegisteredUsers", {"alice": password})
    assert json5.loads(edited)["RegisteredUsers"] == {"alice": password}
    assert oc.parse_config(edited)["RegisteredUsers"] == {"alice": password}
    assert edited.startswith("{\n  // users\n")


def test_members_rejects_what_it_cannot_edit_safely():
    for bad in ("[1, 2]", '{ "a" : 1 "b" : 2 }', '{ "a" : 1', '{ "a" /* x */ 1 }', "{ /* open "):
        with pytest.raises(ValueError):
            oc.members(bad)


def test_commas_inside_strings_are_data_not_syntax():
    """Issue #17: a password holding ',}' or ',]' was rewritten by the trailing-comma cleanup, so every run saw
    a changed password (and restarted Orthanc)."""
    from orthanc_harden.remote import load

    parse = load("auth")["parse_config"]
    text = '{\n  "RegisteredUsers" : { "u" : "a,}b,]c\\",}" , },\n  "L" : [1, 2, ], // x,}\n}'
    assert parse(text) == {"RegisteredUsers": {"u": 'a,}b,]c",}'}, "L": [1, 2]}
