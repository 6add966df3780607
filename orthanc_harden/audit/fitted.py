"""A table that never cuts a cell: where the console is too narrow for it, each row becomes a block of lines.

rich fits a wide table into a narrow console by folding every cell, host names included
(``@dockerengine/default-engi`` over ``ne``), or by cropping columns away. Here the table is printed as it is
when its minimum width (names whole, words whole) fits; otherwise each row is printed as its first cell on a
line of its own and then ``column  value`` lines, so a sysadmin on an 80-column terminal reads every name and finding.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


UNLIMITED = 100_000


class Fitted:
    def __init__(self, table: Table):
        self.table = table

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # Measured without the console's limit, which rich would clamp the minimum to; rich's shrinking of
        # columns to that minimum is not exact (a column can end a character short), so keep one per column.
        unlimited = options.update(max_width=UNLIMITED)
        minimum = Measurement.get(console, unlimited, self.table).minimum
        if minimum + len(self.table.columns) <= options.max_width:
            yield self.table
            return
        yield from self._blocks()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)

    def _blocks(self) -> RenderResult:
        """Each row: its first cell (the host) on a line of its own, then `column  value` lines."""
        first, *others = self.table.columns
        names = list(first.cells)
        values = [list(column.cells) for column in others]
        if self.table.title:
            yield Text.from_markup(f"[bold]{self.table.title}[/bold]")
        for index, name in enumerate(names):
            details = Table.grid(padding=(0, 2))
            details.add_column(style="dim", no_wrap=True)
            details.add_column(overflow="fold")
            for column, cells in zip(others, values, strict=True):
                value = cells[index]
                if isinstance(value, str):
                    value = value.replace(",\n", ", ")  # the table's narrow-column breaks
                if str(value) not in ("-", ""):
                    details.add_row(str(column.header), value)
            yield Group(Text(""), Text(str(name), style="bold"), details)
        if self.table.caption:
            yield Text("")
            yield Text.from_markup(str(self.table.caption))
