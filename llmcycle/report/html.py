"""Reports: Markdown for reading in a terminal or a repository, and one self-contained HTML file.

Stages write Markdown sections (``section.md`` in their stage folder) that may reference images
in the run directory (``![bar chart](03-evaluate/rouge.png)``). ``render_html`` turns the same
Markdown into a single HTML file with every image embedded as a data URI, so the file can be
mailed or attached without its folder. Markdown is converted by the ``markdown`` package.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
from pathlib import Path

from llmcycle.core.files import atomic_write_text

CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;max-width:1100px;margin:2rem auto;
padding:0 1.2rem;color:#1f2328;line-height:1.5}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3rem}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2rem;
margin-top:2.2rem}table{border-collapse:collapse;margin:1rem 0;font-size:.92rem;display:block;overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:.35rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}tr:nth-child(even) td{background:#fbfbfc}code{background:#f6f8fa;padding:.1rem .3rem;
border-radius:4px;font-size:.88em}pre code{display:block;padding:.8rem;overflow-x:auto}img{max-width:100%;
box-sizing:border-box;height:auto;border:1px solid #eaeef2;border-radius:6px;margin:.5rem 0}
blockquote{border-left:4px solid #d0d7de;margin:1rem 0;padding:.2rem 1rem;color:#57606a;background:#f6f8fa}
"""

_IMG = re.compile(r'<img([^>]*?)src="([^"]+)"')


def _embed_images(body: str, base_dir: Path) -> str:
    """Replace relative ``<img src>`` paths with data URIs; a missing image becomes a visible note."""

    def repl(match: re.Match[str]) -> str:
        attrs, src = match.group(1), match.group(2)
        if src.startswith(("data:", "http://", "https://")):
            return match.group(0)
        path = (base_dir / src).resolve()
        if not path.is_file():
            return f'<img{attrs}alt="missing image: {html.escape(src)}" src="data:,"'
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img{attrs}src="data:{mime};base64,{data}"'

    return _IMG.sub(repl, body)


def render_html(markdown_text: str, base_dir: str | Path, title: str = "llmcycle report") -> str:
    """A self-contained HTML page from Markdown whose image paths are relative to ``base_dir``."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables", "fenced_code", "sane_lists"])
    body = _embed_images(body, Path(base_dir))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(run_dir: str | Path, markdown_text: str, title: str) -> Path:
    """Write ``report.md`` and the self-contained ``report.html`` beside it (atomically); returns the .md path."""
    run_dir = Path(run_dir)
    atomic_write_text(run_dir / "report.html", render_html(markdown_text, run_dir, title=title))
    return atomic_write_text(run_dir / "report.md", markdown_text)
