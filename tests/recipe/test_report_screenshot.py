"""report.html in a real (headless) browser: a screenshot that is not blank and shows the charts, every image
decoded, styles applied, nothing wider than the window (desktop and phone widths).

Needs a Chromium or Chrome binary (``scripts/setup.sh`` installs Debian's ``chromium`` when it can, or set
``LLMCYCLE_CHROMIUM``); skipped without one. The page is probed by appending a script that writes what it
measured into the DOM, read back with ``--dump-dom``: no browser driver package needed.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    own = os.environ.get("LLMCYCLE_CHROMIUM")
    if own:
        return own if shutil.which(own) else None
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


BROWSER = find_browser()
pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason=(f"LLMCYCLE_CHROMIUM={os.environ['LLMCYCLE_CHROMIUM']} is not an executable"
            if os.environ.get("LLMCYCLE_CHROMIUM")
            else f"no Chromium/Chrome binary on PATH (tried {', '.join(BROWSERS)}; or set LLMCYCLE_CHROMIUM); "
            "scripts/setup.sh installs Debian's chromium when run as root with apt-get"))

PROBE = """<script>
window.addEventListener("load", () => {
  const W = window.innerWidth;
  const box = (e) => e.getBoundingClientRect();
  const r = {
    innerWidth: W, scrollWidth: document.documentElement.scrollWidth,
    scrollHeight: document.documentElement.scrollHeight,
    bodyWidth: box(document.body).width,
    images: [...document.images].map((i) => ({complete: i.complete, naturalWidth: i.naturalWidth,
      naturalHeight: i.naturalHeight, shown: box(i).width, parent: box(i.parentElement).width,
      data: i.src.startsWith("data:image/png;base64,")})),
    tables: [...document.querySelectorAll("table")].map((t) => ({right: box(t).right, rows: t.rows.length})),
    // anything sticking out of the window, except content of a table or <pre> (those scroll on their own)
    wide: [...document.body.querySelectorAll("*")].filter((e) => box(e).right > W + 0.5
      && !e.parentElement.closest("table, pre")).map((e) => e.tagName + ": " + e.textContent.slice(0, 60)),
    h2: [...document.querySelectorAll("h2")].map((h) => h.textContent),
    thBackground: getComputedStyle(document.querySelector("th")).backgroundColor,
    bodyFont: getComputedStyle(document.body).fontFamily,
  };
  const pre = document.createElement("pre");
  pre.id = "llmcycle-probe";
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>"""


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
           "--hide-scrollbars", f"--user-data-dir={profile}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}"
    return proc


def probe(page: Path, width: int, profile: Path) -> dict:
    """Load ``page`` (with the probe script appended) at ``width`` and return what the probe measured."""
    probed = page.with_name("probe.html")
    probed.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = chromium("--virtual-time-budget=10000", f"--window-size={width},1200", "--dump-dom",
                   probed.as_uri(), profile=profile).stdout
    found = re.search(r'<pre id="llmcycle-probe">(.*?)</pre>', dom, re.DOTALL)
    assert found, f"the probe did not run; the DOM ends with: {dom[-500:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A quick run whose report has every kind of content: tables, a bulleted trace, a quote, code, charts."""
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    root = tmp_path_factory.mktemp("screenshot")
    recipe = Recipe.from_dict({
        "name": "screenshot", "runs_dir": str(root / "runs"), "model": {"source": "builtin:tiny-t5"},
        "data": {"source": "builtin:dialogues", "split": "test", "n": 4},
        "stages": [{"info": {"trace": "Hello there, how are you?"}},
                   {"estimate": {"batch_size": 2, "input_tokens": 64, "output_tokens": 16}},
                   {"generate": {"n_examples": 3, "generation": {"max_new_tokens": 6, "min_new_tokens": 3}}},
                   {"tune": {"method": "lora", "lora": {"r": 4}, "max_steps": 2, "batch_size": 2, "log_every": 1,
                             "max_input_tokens": 48, "max_target_tokens": 12}},
                   {"evaluate": {"generation": {"max_new_tokens": 6, "min_new_tokens": 3},
                                 "bootstrap_resamples": 100, "metrics": ["rouge", "length"]}}],
    })
    return run_recipe(recipe).file("report.html")


SECTIONS = ["The lifecycle at a glance", "Model card", "Memory and compute estimates", "Generated outputs", "Fine-tuning: lora", "Evaluation"]


@pytest.mark.parametrize("width", [1280, 500])  # desktop, and about the narrowest window Chromium opens
def test_report_lays_out_in_a_browser(report, width, tmp_path):
    got = probe(report, width, tmp_path / "profile")
    assert got["innerWidth"] >= width - 20  # (Chromium may widen a very narrow window a little)
    assert [next((s for s in SECTIONS if h.startswith(s)), h) for h in got["h2"]] == SECTIONS
    assert got["scrollWidth"] <= got["innerWidth"], f"horizontal overflow: {got['wide']}"
    assert got["wide"] == []
    assert got["bodyWidth"] <= 1100 + 40  # the readable column of the CSS (max-width 1100px, padding 2 x 1.2rem)
    assert got["thBackground"] == "rgb(246, 248, 250)" and "sans-serif" in got["bodyFont"]  # the styles applied
    images = got["images"]
    assert len(images) == 3  # loss curve, ROUGE bars, output lengths
    for img in images:
        assert img["data"] and img["complete"] and img["naturalWidth"] > 100 and img["naturalHeight"] > 100, img
        assert img["shown"] <= img["parent"] + 0.5, img  # scaled down to fit, never wider than the page
    assert len(got["tables"]) >= 7 and all(t["right"] <= got["innerWidth"] for t in got["tables"])


def test_report_screenshot(report, tmp_path):
    import numpy as np
    from PIL import Image

    height = probe(report, 1280, tmp_path / "profile")["scrollHeight"]
    assert 2000 < height < 12000
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", f"--window-size=1280,{height}", report.as_uri(), profile=tmp_path / "profile")
    img = Image.open(shot)
    assert img.size == (1280, height)
    px = np.asarray(img.convert("RGB")).astype(int)
    grey = px.mean(axis=2)
    assert grey.std() > 20 and (grey < 100).mean() > 0.005  # not blank: dark text on a light page
    colours = np.unique(px[..., 0] << 16 | px[..., 1] << 8 | px[..., 2])
    assert len(colours) > 200  # antialiased text, table shading, charts
    assert (px[:, :60] == 255).all()  # the centred column leaves white margins: nothing escapes to the edges

    def near(rgb, tol=12):
        return (np.abs(px - np.array(rgb)).max(axis=2) <= tol).sum()

    # the charts were painted: matplotlib's first two series colours (lines, bars) appear on the page
    assert near((31, 119, 180)) > 200 and near((255, 127, 14)) > 50
    assert near((246, 248, 250), tol=1) > 10_000  # table header shading from the CSS
