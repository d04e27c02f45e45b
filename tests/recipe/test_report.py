"""Reports: Markdown to one self-contained HTML file with images embedded; charts are real PNGs."""

from __future__ import annotations

import base64
import re

from llmcycle.report.charts import bar_chart, histogram
from llmcycle.report.html import render_html
from llmcycle.report.markdown import md_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_charts_write_png(tmp_path):
    bar = bar_chart({"base": {"rouge1": 0.2, "rougeL": 0.15}, "tuned": {"rouge1": 0.3, "rougeL": 0.25}},
                    tmp_path / "bars.png", "ROUGE")
    hist = histogram({"base": [1, 2, 2, 3], "tuned": [2, 3, 3, 4]}, tmp_path / "h.png", "lengths", "words")
    for p in (bar, hist):
        assert p.read_bytes().startswith(PNG_MAGIC) and p.stat().st_size > 2000
    assert not list(tmp_path.glob(".*.tmp"))


def test_html_embeds_images_and_tables(tmp_path):
    bar_chart({"m": {"a": 1.0}}, tmp_path / "stage" / "c.png", "t")
    md = "# Title\n\n" + md_table(["model", "score"], [["a|b", 1]]) + "\n![chart](stage/c.png)\n"
    page = render_html(md, tmp_path, title="x")
    assert "<table>" in page and "a\\|b" not in page and "a|b" in page
    src = re.search(r'src="data:image/png;base64,([^"]+)"', page)
    assert src and base64.b64decode(src.group(1)).startswith(PNG_MAGIC)
    assert "stage/c.png" not in page  # nothing points outside the file


def test_missing_image_is_visible_not_silent(tmp_path):
    page = render_html("![gone](nope.png)", tmp_path)
    assert "missing image: nope.png" in page


def test_table_cells_are_text_never_html(tmp_path):
    from llmcycle.report import render_html

    md = md_table(["model", "output"], [["a", "<script>alert(1)</script> <pad> ok"]])
    page = render_html(md, tmp_path)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &lt;pad&gt; ok" in page


def test_the_report_header_says_whether_the_weights_were_trained(tmp_path):
    """A builtin of random weights (tiny-t5) or ``weights: random`` is "random (untrained)" in the header, never
    "pretrained"; the pretrained builtin (minilm-seq2seq) is "pretrained"."""
    from llmcycle.recipe.recipe import Recipe
    from llmcycle.recipe.runner import run_recipe

    def header(model: dict) -> str:
        recipe = Recipe.from_dict({"name": "h", "runs_dir": str(tmp_path / "runs"), "model": model,
                                   "stages": [{"estimate": {"batch_size": 1, "input_tokens": 8, "output_tokens": 8}}]})
        report = (run_recipe(recipe).path / "report.md").read_text()
        return next(line for line in report.splitlines() if line.startswith("- model: "))

    assert header({"source": "builtin:tiny-t5"}) == "- model: `builtin:tiny-t5` (weights: random (untrained), dtype: fp32)"
    assert "(weights: pretrained," in header({"source": "builtin:minilm-seq2seq"})
    assert "(weights: random (untrained)," in header({"source": "builtin:minilm-seq2seq", "weights": "random"})
