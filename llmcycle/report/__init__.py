"""Reports: Markdown tables, charts (PNG) and the self-contained HTML page.

Every stage's report section and every command's report use these; nothing here knows about
stages. ``import llmcycle.report`` is cheap: matplotlib and markdown load when a chart or page is made.
"""

from llmcycle.report.charts import bar_chart, histogram, line_chart
from llmcycle.report.html import render_html, write_report
from llmcycle.report.markdown import md_escape, md_table

__all__ = ["bar_chart", "histogram", "line_chart", "md_escape", "md_table", "render_html", "write_report"]
