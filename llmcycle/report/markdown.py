"""Markdown pieces every report section uses: tables and escaped text."""

from __future__ import annotations


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    """A GitHub-flavoured Markdown table. Cells are text: pipes, newlines and angle brackets are escaped, so a
    model's output or a data row (``<pad>``, ``<script>``) shows as written and never becomes HTML in the report."""
    esc = [[str(c).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;") for c in r]
           for r in rows]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in esc]) + "\n"


def md_escape(text: str) -> str:
    """Keep tokens like ``[CLS](101)`` and ``*`` literal in Markdown."""
    for ch in "\\[]*_`":
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;")
