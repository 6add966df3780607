"""Read a table as the command line prints it: each row's cells by column name, wrapped lines joined by a space.

Two layouts (orthanc_harden/audit/fitted.py): a rich table, or, where the console is too narrow for it, one block
per row (its host on one line, then `column  value` lines).
"""

from __future__ import annotations

import re

def _table_rows(lines: list[str]) -> list[dict[str, str]]:
    header = next(line for line in lines if line.startswith("┃"))
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    found: list[dict[str, list[str]]] = []
    for line in lines:
        if not line.startswith("│"):
            continue
        cells = [cell.strip() for cell in line.strip("│").split("│")]
        if cells[0] or not found:  # a new row starts with its first cell (the host)
            found.append({name: [] for name in names})
        for name, cell in zip(names, cells, strict=True):
            if cell:
                found[-1][name].append(cell)
    return [{name: " ".join(parts) for name, parts in row.items()} for row in found]


def _block_rows(lines: list[str]) -> list[dict[str, str]]:
    found: list[dict[str, list[str]]] = []
    key = None
    for previous, line in zip([""] + lines[:-1], lines, strict=True):
        if not line.strip():
            continue
        if not previous.strip():  # a block starts after a blank line with the row's names
            found.append({"host": [line.strip()]})
            key = None
        elif line.startswith(" ") and key:
            found[-1][key].append(line.strip())
        else:
            key, value = (re.split(r"\s{2,}", line.strip(), maxsplit=1) + [""])[:2]
            found[-1][key] = [value.strip()]
    return [{name: " ".join(parts) for name, parts in row.items()} for row in found]


def rows(text: str) -> list[dict[str, str]]:
    lines = [line.rstrip() for line in text.splitlines()]
    return _table_rows(lines) if any(line.startswith("┃") for line in lines) else _block_rows(lines[1:])


def row_of(text: str, first_cell: str) -> dict[str, str]:
    return next(row for row in rows(text) if next(iter(row.values())) == first_cell)
