"""Human tables (rich) by default, JSON with --json; messages and progress bars go to stderr."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

# Not a terminal (a pipe, a file): wide enough that rows are not wrapped.
_PIPE_WIDTH = 240

Columns = Sequence[tuple[str, str]]  # (field, heading)


def _cell(value: Any) -> Text:
    # Text, not markup: API values are shown exactly as they are.
    if value is None:
        return Text("")
    if isinstance(value, dict | list):
        return Text(json.dumps(value, separators=(",", ":")))
    return Text(str(value))


def _console(stream: TextIO) -> Console:
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    return Console(file=stream, highlight=False, width=None if is_tty else _PIPE_WIDTH)


class Output:
    def __init__(self, *, json_mode: bool, stdout: TextIO, stderr: TextIO) -> None:
        self.json_mode = json_mode
        self.stdout = stdout
        self.stderr = stderr
        self._out = _console(stdout)
        self._err = _console(stderr)

    def json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def info(self, text: str) -> None:
        self._err.print(Text(text))

    def warn(self, text: str) -> None:
        self._err.print(Text(text, style="bold yellow"))

    def error(self, text: str) -> None:
        self._err.print(Text(f"error: {text}", style="bold red"))

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Columns, *, title: str | None = None) -> None:
        table = Table(title=title, show_edge=False, header_style="bold")
        for _, heading in columns:
            table.add_column(heading, overflow="fold")
        for row in rows:
            table.add_row(*(_cell(row.get(name)) for name, _ in columns))
        self._out.print(table)

    def record(self, value: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        table = Table(show_header=False, show_edge=False, box=None, padding=(0, 2, 0, 0))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for name in fields or [k for k in value if k != "object"]:
            table.add_row(name, _cell(value.get(name)))
        self._out.print(table)

    def show(self, value: Mapping[str, Any], fields: Sequence[str] | None = None) -> None:
        """One object: JSON or a field/value table."""
        if self.json_mode:
            self.json(value)
        else:
            self.record(value, fields)

    def listing(self, items: Sequence[Mapping[str, Any]], columns: Columns, next_token: str | None) -> None:
        if self.json_mode:
            self.json({"object": "list", "data": list(items), "continuation_token": next_token,
                       "has_more": next_token is not None})
            return
        self.table(items, columns)
        if next_token is not None:
            self.info(f"More results: pass --all, or --continuation-token {next_token}")

    @contextmanager
    def progress(self, description: str, total: int | None, *, in_bytes: bool = False) -> Iterator[Callable[..., None]]:
        """Yields update(completed, total=None); drawn only on a terminal."""
        counter = DownloadColumn() if in_bytes else MofNCompleteColumn()
        with Progress(
            TextColumn("{task.description}"), BarColumn(), counter,
            console=self._err, transient=True, disable=not self._err.is_terminal,
        ) as bar:
            task = bar.add_task(description, total=total)

            def update(completed: int, new_total: int | None = None) -> None:
                bar.update(task, completed=completed, total=new_total if new_total is not None else total)

            yield update
