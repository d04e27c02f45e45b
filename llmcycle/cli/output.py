"""What every command prints with: the consoles, tables, and option help taken from config fields."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

# Markup, emoji codes and highlighting are off: paths, column names and dialogues print as they are
# (``[/red]`` in a file name is text, ``file.jsonl:100:`` never becomes an emoji). Styles are explicit
# (``style=``). Lines never wrap (``soft_wrap``), so a printed path or resume command stays whole.
console = Console(emoji=False, markup=False, highlight=False, soft_wrap=True)
err_console = Console(stderr=True, emoji=False, markup=False, highlight=False, soft_wrap=True)


def table(title: str, rows: list[tuple[Any, ...]] | list[list[Any]], headers: tuple[str, ...]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*(str(c) for c in r))
    return t


def field_help(config_cls: Any, name: str, extra: str = "") -> str:
    """A config field's description (each field is documented once, on its config class)."""
    text = config_cls.model_fields[name].description or ""
    return f"{text} {extra}".strip()


def say(msg: str) -> None:
    """A progress line (no markup: paths and texts print as they are)."""
    console.print(f"  {msg}", highlight=False, markup=False, soft_wrap=True)
