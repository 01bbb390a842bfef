"""Terminal output in one place: whether a person is looking (the stream is a terminal), how wide the
terminal is, and the two things drawn for people, tables and the repetitions' progress bar.

When stdout is not a terminal (a pipe, a file, CI, `--json`, click's CliRunner) tables are plain
aligned columns that never wrap, so scripts and greps see one line per row; on a terminal they are
drawn by `rich` to fit its width, the long text columns wrapping. The progress bar goes to stderr only
and only when stderr is a terminal. `rich` is imported inside the functions that draw, and only on a
terminal, so `pack --help`, `list` and `verify` piped pay nothing for it (bench/startup.py measures
the piped start). PACK_PLAIN=1 (or TERM=dumb) keeps the plain form on a terminal too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Iterator, Sequence


def is_terminal(stream=None) -> bool:
    """A person is reading `stream` (default stdout): a TTY, not TERM=dumb, not PACK_PLAIN=1."""
    stream = sys.stdout if stream is None else stream
    if os.environ.get("PACK_PLAIN") == "1" or os.environ.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False


def width() -> int:
    """The terminal's columns ($COLUMNS first, as rich and click read it)."""
    return shutil.get_terminal_size((100, 24)).columns


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    wrap: Sequence[str] = (),
    fancy: bool | None = None,
    max_width: int | None = None,
    indent: int = 0,
) -> str:
    """HEADERS over ROWS. On a terminal (or fancy=True) a rich table no wider than the terminal (or
    max_width), the `wrap` columns (default: the last) folding their text; else plain columns two
    spaces apart with the last one unpadded. Cells are str()'d, None as '—'. indent: spaces before every
    line (taken from the width on a terminal)."""
    cells = [["—" if c is None else str(c) for c in r] for r in rows]
    if fancy is None:
        fancy = is_terminal()
    if not fancy:
        return _indented(_plain(list(headers), cells), indent)
    import io

    from rich.console import Console
    from rich.table import Table

    folding = set(wrap) or {headers[-1]}
    total = (max_width or width()) - indent
    natural = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    kept = [k for k, h in enumerate(headers) if h not in folding]
    fixed = _fit([natural[k] for k in kept], [len(headers[k]) for k in kept], total, len(headers))
    t = Table(box=_box(), header_style="bold", pad_edge=False, show_edge=False, expand=False)
    for h in headers:
        if h in folding:  # the prose columns share what is left, folding their text
            t.add_column(h, overflow="fold", ratio=1)
        else:  # ids and verdicts whole where the terminal allows, folded (never cut) where it does not
            t.add_column(h, overflow="fold", max_width=fixed.pop(0))
    for r in cells:
        t.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=total, force_terminal=True, highlight=False).print(t)
    return _indented(buf.getvalue().rstrip("\n"), indent)


def _indented(text: str, n: int) -> str:
    return "\n".join(" " * n + line for line in text.splitlines()) if n else text


def _fit(natural: list[int], floors: list[int], total: int, n_cols: int) -> list[int]:
    """Widths for the columns that do not fold: their natural widths, the widest trimmed first (never
    below its header, nor 6) until the folding columns keep a readable strip (24 characters, or a third
    of the terminal)."""
    room = total - 3 * n_cols - min(24, total // 3)
    widths = list(natural)
    while sum(widths) > room:
        can = [k for k, w in enumerate(widths) if w > max(floors[k], 6)]
        if not can:
            break
        k = max(can, key=lambda k: widths[k])
        widths[k] -= 1
    return widths


def prose(lines: Sequence[str], fancy: bool | None = None, indent: int = 2) -> str:
    """Sentences under a table: on a terminal each wraps to its width (continuations indented), else
    one line each, as given."""
    if fancy is None:
        fancy = is_terminal()
    if not fancy:
        return "\n".join(lines)
    import textwrap

    w = width()
    return "\n".join(
        textwrap.fill(x, w, subsequent_indent=" " * indent, break_on_hyphens=False) if x else x for x in lines
    )


def _box():
    from rich import box

    return box.SIMPLE_HEAD


def _plain(headers: list[str], cells: list[list[str]]) -> str:
    n = len(headers)
    widths = [max([len(headers[i])] + [len(r[i]) for r in cells]) for i in range(n)]
    lines = []
    for r in [headers, *cells]:
        parts = [r[i].ljust(widths[i]) if i < n - 1 else r[i] for i in range(n)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


class _NoBar:
    def advance(self) -> None:
        pass

    def kept(self) -> None:
        pass


class _Bar:
    """rich's progress bar over one row's repetitions; kept (resumed) repetitions do not count towards
    the rate, so the ETA is the time of the repetitions still to run."""

    def __init__(self, progress, task):
        self.progress, self.task, self.n = progress, task, 0

    def advance(self) -> None:
        self.n += 1
        self.progress.update(self.task, completed=self.n)

    def kept(self) -> None:
        self.n += 1
        self.progress.reset(self.task, completed=self.n)  # reset: drops the speed samples, keeps the count


@contextlib.contextmanager
def progress(total: int, label: str, stream=None) -> Iterator[_Bar | _NoBar]:
    """A bar with elapsed time and ETA over TOTAL repetitions on stderr (or `stream`), only when that is a
    terminal and there is more than one repetition; otherwise a bar that draws nothing. While it is
    drawn, what is written to sys.stderr (the run's log lines) is printed above it."""
    stream = sys.stderr if stream is None else stream
    if total < 2 or not is_terminal(stream):
        yield _NoBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(file=stream),
        redirect_stdout=False,  # stdout carries results, never the bar
        redirect_stderr=stream is sys.stderr,
        transient=False,
    )
    with bar:
        yield _Bar(bar, bar.add_task(label, total=total))
