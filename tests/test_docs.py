"""The documentation: README.md is the front door, docs/ is a site whose strict build must pass.

`mkdocs build --strict` (mkdocs.yml: every validation check at "warn") fails on a broken link, a link
to a missing anchor, an absolute link, a nav entry that does not exist or a page left out of the nav.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def _nav_pages() -> list[str]:
    """Every page named in mkdocs.yml's nav, in order (paths relative to docs/)."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["strict"] is True

    def walk(entry) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [p for e in entry for p in walk(e)]
        if isinstance(entry, dict):
            return [p for v in entry.values() for p in walk(v)]
        raise AssertionError(f"unexpected nav entry {entry!r}")

    return walk(config["nav"])


def _build(project: Path, site: Path) -> subprocess.CompletedProcess:
    pytest.importorskip("mkdocs")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project, capture_output=True, text=True, timeout=300,
    )


def _page_html(site: Path, page: str) -> Path:
    """Where mkdocs (use_directory_urls, the default) writes a page: index.md -> index.html, a/b.md -> a/b/index.html."""
    stem = page[: -len(".md")]
    if stem == "index" or stem.endswith("/index"):
        return site / stem.removesuffix("index") / "index.html"
    return site / stem / "index.html"


def test_strict_build_passes_and_writes_every_nav_page(tmp_path):
    site = tmp_path / "site"
    result = _build(ROOT, site)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    missing = [p for p in _nav_pages() if not _page_html(site, p).is_file()]
    assert not missing, f"nav pages with no HTML page in the built site: {missing}"


def test_strict_build_fails_on_a_broken_link(tmp_path):
    """The check can fail: a link to a page that does not exist breaks the build, naming the link."""
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    page = tmp_path / "docs" / "fine-tuning.md"
    page.write_text(page.read_text(encoding="utf-8") + "\nSee [x](no-such-page.md).\n", encoding="utf-8")
    result = _build(tmp_path, tmp_path / "site")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a broken link did not fail the strict build:\n{output}"
    assert "no-such-page.md" in output


def test_every_docs_page_is_in_the_nav():
    nav = set(_nav_pages())
    assert len(nav) == len(_nav_pages()), "a page is listed twice in mkdocs.yml's nav"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not pages - nav, f"pages under docs/ missing from mkdocs.yml's nav: {sorted(pages - nav)}"
    assert not nav - pages, f"nav entries with no page under docs/: {sorted(nav - pages)}"
    assert "recipes.md" in nav  # the generated recipe reference


def test_readme_links_into_docs_exist():
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    into_docs = [t for t in targets if t.startswith("docs/")]
    assert into_docs, "README links to no page under docs/"
    broken = [t for t in into_docs if not (ROOT / t.split("#", 1)[0]).is_file()]
    assert not broken, f"README links to files that do not exist: {broken}"
    # every guide is reachable from the front door
    linked = {t.split("#", 1)[0] for t in into_docs}
    unlinked = sorted(f"docs/{p}" for p in _nav_pages() if p != "index.md" and f"docs/{p}" not in linked)
    assert not unlinked, f"README's Documentation list misses: {unlinked}"


def _bash_block_lines(text: str) -> set[str]:
    lines: set[str] = set()
    for block in re.findall(r"^```bash\n(.*?)^```$", text, flags=re.M | re.S):
        lines.update(block.splitlines())
    return lines


def test_readme_is_a_short_front_door_with_the_two_commands():
    text = README.read_text(encoding="utf-8")
    n = len(text.splitlines())
    assert n <= 250, f"README.md has {n} lines; keep it a front door (at most 250) and move the rest to docs/"
    bash = _bash_block_lines(text)
    assert "bash scripts/quickstart.sh" in bash
    assert "bash scripts/test.sh" in bash


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(0).rstrip()


@pytest.mark.parametrize("heading", ["Two commands", "Commands"])
def test_site_front_page_repeats_the_readme_sections(heading):
    """docs/index.md carries the README's "Two commands" and "Commands" sections word for word."""
    readme = _section(README.read_text(encoding="utf-8"), heading)
    index = _section((DOCS / "index.md").read_text(encoding="utf-8"), heading)
    assert index == readme, f"docs/index.md's '## {heading}' differs from README.md's: copy it across"
