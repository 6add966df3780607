"""The README's generated tables (settings, findings, layout): each rewritten between its two markers."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Callable


def update(path: Path, begin: str, end: str, table: str) -> bool:
    """Put `table` between the markers; True when the file changed."""
    text = path.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _m: f"{begin}\n{table}{end}", text)
    if new != text:
        path.write_text(new)
    return new != text


def command_line(argv: list[str], begin: str, end: str, markdown_table: Callable[[], str]) -> None:
    """``--update-readme`` rewrites README.md of the working directory; without it the table goes to stdout."""
    if argv == ["--update-readme"]:
        update(Path("README.md"), begin, end, markdown_table())
    else:
        sys.stdout.write(markdown_table())
