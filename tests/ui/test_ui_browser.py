"""The UI in a real headless Chromium, driven by Playwright with the system browser, one session through the whole
flow: launch the quickstart (tiny-t5, a few steps per stage) from the page, resume an interrupted run, generate in
the playground (two columns, a settings error shown beside its field and cleared), open a finished run's report,
watch the quickstart reach "done" stage by stage, compare two runs (metrics side by side, loss curves overlaid).
Screenshots of each view at 1280 and 500 px wide are saved under the test's tmp dir, checked not blank and without
horizontal overflow; no request leaves the UI's own address.

Needs Debian's ``chromium`` (``scripts/setup.sh`` installs it when it can; or set ``LLMCYCLE_CHROMIUM``) and the
``playwright`` package (the ``test`` extra); skipped without either. Playwright's own browser download is not used.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from tests.ui.ui_helpers import copy_run

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def find_browser() -> str | None:
    own = os.environ.get("LLMCYCLE_CHROMIUM")
    if own:
        return shutil.which(own)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


BROWSER = find_browser()
pytestmark = pytest.mark.skipif(BROWSER is None, reason=f"no Chromium/Chrome binary on PATH (tried {', '.join(BROWSERS)}"
                                "; or set LLMCYCLE_CHROMIUM); scripts/setup.sh installs Debian's chromium when run as "
                                "root with apt-get")

# the quickstart as shipped, on the tiny model with a few examples and steps per stage
QUICKSTART = [
    "data.n=4", "info.trace=null", "prompt_lab.templates=[none]", "prompt_lab.n_examples=2", "prompt_lab.max_new_tokens=4",
    "generate.n_examples=2", "generate.generation.max_new_tokens=4",
    "tune.max_steps=2", "tune.batch_size=2", "tune.log_every=1", "tune.save_every=50", "tune.max_input_tokens=64",
    "tune.max_target_tokens=16",
    "evaluate.bootstrap_resamples=100", "evaluate.generation.max_new_tokens=4",
    "align.n_prompts=4", "align.ppo.steps=1", "align.ppo.batch_size=4", "align.ppo.mini_batch_size=2",
    "align.ppo.generation.max_new_tokens=4", "align.ppo.generation.max_query_tokens=64", "align.evaluation.n=2",
    "align.evaluation.samples=1", "align.evaluation.max_input_tokens=64", "align.evaluation.generation.max_new_tokens=4",
    "optimize.measure.n=2", "optimize.measure.latency_n=0", "optimize.measure.batch_size=2",
    "optimize.measure.generation.max_new_tokens=4",
    "serve.requests=2", "serve.clients=2", "serve.generation.max_new_tokens=4",
]
LONG = 300_000  # ms: generous, for a loaded 2-core machine; every wait ends as soon as its condition holds


def check_screenshot(page, path: Path) -> None:
    """Save a full-page screenshot; the page has no horizontal overflow and the picture is not blank."""
    import numpy as np
    from PIL import Image

    overflow = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert overflow[0] <= overflow[1], f"{path.name}: horizontal overflow {overflow}"
    page.screenshot(path=str(path), full_page=True)
    px = np.asarray(Image.open(path).convert("RGB")).astype(int)
    grey = px.mean(axis=2)
    assert px.shape[1] == overflow[1] and px.shape[0] >= 300, px.shape
    assert grey.std() > 20 and (grey < 100).mean() > 0.003, f"{path.name} looks blank"


def test_the_ui_in_a_real_browser(finished_run, tmp_path, monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(pip install -e '.[test]')")
    from llmcycle.serving.server import BackgroundServer
    from llmcycle.ui.app import create_ui_app

    expect = sync_api.expect
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the runs the page starts share 2 cores with the page and each other
    runs = tmp_path / "runs"
    copy_run(finished_run, runs, "tiny-a")
    copy_run(finished_run, runs, "tiny-stopped", interrupted=True)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    app = create_ui_app({"runs_dir": str(runs)})
    problems: list[str] = []
    try:
        with BackgroundServer(app) as server, sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=BROWSER, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("request", lambda r: None if r.url.startswith((server.url, "data:"))
                    else problems.append(f"request to {r.url}"))
            page.goto(server.url + "/")
            page.wait_for_selector("body[data-ready=true]")

            # an uploaded recipe that fails when it runs (its data file is missing): checked, started, failed
            broken = tmp_path / "broken.yaml"
            broken.write_text(f"name: broken\nmodel: {{source: builtin:tiny-t5}}\n"
                              f"data: {{source: {tmp_path / 'missing.jsonl'}, split: test}}\n"
                              "stages:\n  - generate: {n_examples: 2}\n")
            page.click("#nav-launch")
            page.check("#ln-kind-upload")
            page.set_input_files("#ln-file", str(broken))
            page.click("#ln-check")
            expect(page.locator("#ln-plan-table tbody tr")).to_have_count(1)
            page.click("#ln-start")
            failed = page.locator(".job[data-run^='broken-']")
            expect(failed).to_have_count(1)

            # launch the quickstart: shipped recipe, overrides as fields, checked whole (the plan) before it starts
            page.check("#ln-kind-shipped")
            page.select_option("#ln-recipe", "quickstart")
            for item in QUICKSTART:
                key, value = item.split("=", 1)
                page.click("#ln-add")
                page.locator(".override .ov-key").last.fill(key)
                page.locator(".override .ov-value").last.fill(value)
            expect(page.locator(".override .ov-key").first).to_have_value("model.source")  # the page's first row
            expect(page.locator(".override .ov-value").first).to_have_value("builtin:tiny-t5")
            page.click("#ln-check")
            expect(page.locator("#ln-plan-table tbody tr")).to_have_count(9)
            expect(page.locator("#ln-status")).to_contain_text("every field valid")
            page.click("#ln-start")
            quick = page.locator(".job[data-run^='quickstart-']")
            expect(quick).to_have_count(1)
            quickstart = quick.get_attribute("data-run")
            expect(failed).to_have_attribute("data-state", "failed", timeout=LONG)  # the page shows why, and goes on
            expect(failed.locator(".message.error")).to_contain_text("error: stage 01-generate failed: no such file")
            expect(failed.locator("button.resume")).to_be_hidden()  # it left no run behind to resume

            # resume the interrupted run from its page while the quickstart runs
            page.click("#nav-runs")
            page.locator("#runs-table tr[data-run='tiny-stopped'] button.open-run").click()
            expect(page.locator("#run-title")).to_contain_text("interrupted")
            page.click("#run-resume")
            resumed = page.locator("#job-tiny-stopped")
            expect(resumed).to_have_attribute("data-state", "done", timeout=LONG)
            expect(resumed.locator(".stage.done")).to_have_count(3)

            # the playground: a settings error beside its field, then two columns side by side with ROUGE
            page.click("#nav-playground")
            page.fill("#pg-c0-temperature", "0.5")
            error = page.locator("[data-path='columns[0].generation.temperature'] .field-error")
            expect(error).to_contain_text("no effect without sampling")
            page.check("#pg-c0-do_sample")
            expect(error).to_have_text("")
            page.fill("#pg-c0-max_new_tokens", "8")
            page.fill("#pg-c0-seed", "3")
            page.check("#pg-two")
            page.fill("#pg-c1-model", "run:tiny-a/tuned-lora")
            page.fill("#pg-c1-max_new_tokens", "6")
            page.fill("#pg-c1-no_repeat_ngram_size", "2")
            page.click("#pg-generate")
            expect(page.locator("#pg-status")).to_have_text("done", timeout=LONG)
            for col in (0, 1):
                expect(page.locator(f"#pg-summary-{col}")).to_contain_text("mean ROUGE-1")
                expect(page.locator(f"#pg-out-0-{col} .text")).not_to_be_empty()
                expect(page.locator(f"#pg-out-0-{col} .meta")).to_contain_text("ROUGE-1")
            assert page.locator("#banner").is_hidden()
            check_screenshot(page, shots / "playground-1280.png")

            # a finished run's report, rendered in the page
            page.click("#nav-runs")
            page.locator("#runs-table tr[data-run='tiny-a'] button.open-run").click()
            report = page.frame_locator("#run-report")
            expect(report.locator("h1")).to_have_text("llmcycle run: tiny")
            expect(report.locator("h2").first).to_have_text("The lifecycle at a glance")
            expect(page.locator("#run-files li a[href$='/report.html']")).to_have_count(1)
            check_screenshot(page, shots / "run-1280.png")

            # the quickstart, watched stage by stage until done
            page.click("#nav-launch")
            card = page.locator(f"#job-{quickstart}")
            expect(card).to_have_attribute("data-state", "done", timeout=LONG)
            expect(card.locator(".stage.done")).to_have_count(9)
            expect(card.locator("progress")).to_have_attribute("value", "9")
            expect(card.locator("pre.log")).to_contain_text("done:")
            check_screenshot(page, shots / "launch-1280.png")

            # two runs compared: metrics side by side, the loss curves overlaid
            page.click("#nav-runs")
            page.locator(f"#runs-table tr[data-run='{quickstart}'] .pick").check()
            page.locator("#runs-table tr[data-run='tiny-a'] .pick").check()
            page.click("#runs-compare")
            loss = page.locator(".chart[data-curve='tune train_loss'] polyline.series")
            expect(loss).to_have_count(2)
            row = page.locator("#compare-table tbody tr", has_text="evaluate base ROUGE-1")
            expect(row.locator("td")).to_have_count(3)
            assert "-" not in row.locator("td").all_inner_texts()[1:]
            check_screenshot(page, shots / "compare-1280.png")

            # the same views on a phone-sized window
            page.set_viewport_size({"width": 500, "height": 900})
            check_screenshot(page, shots / "compare-500.png")
            for view, ready in (("playground", "#pg-summary-1"), ("run/tiny-a", "#run-files li"),
                                ("launch", f"#job-{quickstart}")):
                page.evaluate(f"location.hash = '{view}'")
                page.wait_for_selector(ready, state="attached")
                check_screenshot(page, shots / f"{view.split('/')[0]}-500.png")
            browser.close()
    finally:
        for job in app.state.launcher.jobs.values():  # a failed test leaves no run going
            if job.process.poll() is None:
                os.killpg(job.process.pid, signal.SIGKILL)
                job.process.wait()
    assert problems == []
    assert sorted(p.name for p in shots.iterdir()) == sorted(
        f"{v}-{w}.png" for v in ("playground", "run", "launch", "compare") for w in (1280, 500))
