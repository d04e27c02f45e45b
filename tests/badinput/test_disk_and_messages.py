"""A full disk and a read-only folder, Rich markup and emoji codes in user text, long lines, and the smaller
facts of issue 25 (the smoke test that can fail, distil's partial train block, int8 model cards, ZeRO-3
wording, the PPO monitor's rollback message, serve's log lines, toxicity labels, WordPiece text)."""

from __future__ import annotations

import errno
import json
import logging
import os

import pytest

from llmcycle.core import files
from tests.badinput.harness import snapshot
from tests.cli_helpers import run_cli


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "No space left on device"), (errno.EROFS, "read-only"),
                                        (errno.EACCES, "permission")])
def test_a_full_disk_or_read_only_folder_is_one_line_naming_the_path(tmp_path, monkeypatch, capsys, code, says):
    real = files.tempfile.mkstemp

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code), kwargs.get("dir"))

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.txt").write_text("hello\n")
    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)
    before = snapshot(tmp_path)
    got, _, err = run_cli(monkeypatch, capsys, "generate", "builtin:tiny-t5", "--input-file", "in.txt",
                          "--max-new-tokens", "2")
    assert got == 1 and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith("error: cannot write in.generated.jsonl: ") and says in err.lower() + err
    assert snapshot(tmp_path) == before  # no partial or temporary file
    monkeypatch.setattr(files.tempfile, "mkstemp", real)


def test_a_writer_names_its_file_not_its_temporary_name(tmp_path, monkeypatch):
    def full(fd, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fdopen", full)
    with pytest.raises(OSError) as exc:
        files.atomic_write_json(tmp_path / "a.json", {"a": 1})
    assert exc.value.filename == str(tmp_path / "a.json") and exc.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_markup_and_emoji_codes_print_as_they_are(tmp_path, monkeypatch, capsys):
    row = {"dialogue": "#Person1#: see [/red] and [bold]this[/bold] :smile: file.jsonl:100: " + "word " * 40,
           "summary": "keep [/red] :100:"}
    path = tmp_path / "d[x].jsonl"
    path.write_text(json.dumps(row) + "\n")
    code, out, _ = run_cli(monkeypatch, capsys, "data", str(path))
    assert code == 0
    assert "[/red] and [bold]this[/bold] :smile: file.jsonl:100:" in out and "keep [/red] :100:" in out
    assert str(path) in out
    assert "😄" not in out and "💯" not in out
    assert row["dialogue"].strip() in out.replace("\n", "")  # the dialogue printed whole, not wrapped into pieces


def test_a_long_error_is_one_line_even_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capsys):
    deep = tmp_path / ("a-very-long-folder-name-" * 6) / "file.jsonl:100:.jsonl"
    code, _, err = run_cli(monkeypatch, capsys, "data", str(deep))
    assert code == 1 and len(err.splitlines()) == 1 and str(deep) in err and len(err) > 160


def test_the_data_preview_of_a_huge_row_is_bounded(tmp_path, monkeypatch, capsys):
    """Issue 25: one 30 MB row never finished (the preview grew superlinearly: 1 MB 3.1 s, 3 MB 11.5 s). The preview
    is cut, so its output and time do not grow with the row: 30 MB takes about 2 s here (the bound leaves room for
    a loaded machine; the old cost extrapolates to minutes)."""
    import time

    (tmp_path / "big.jsonl").write_text(json.dumps({"dialogue": "word " * 6_000_000, "summary": "s"}) + "\n")
    start = time.perf_counter()
    code, out, _ = run_cli(monkeypatch, capsys, "data", str(tmp_path / "big.jsonl"))
    seconds = time.perf_counter() - start
    assert code == 0 and len(out) < 10_000 and "(29,998,000 more characters)" in out
    assert seconds < 60, seconds


def test_the_smoke_test_fails_on_empty_outputs_and_an_empty_stream():
    from llmcycle.serving.smoke import SmokeResult

    good = dict(requests=2, ok=2, failed=0, seconds=1.0, throughput_rps=2.0, p50_ms=1.0, max_ms=1.0,
                matches_offline=2, empty_outputs=0, stream_chunks=3, stream_matches=True,
                bad_requests={"bad JSON": 400})
    assert SmokeResult(**good).passed
    empty = SmokeResult(**{**good, "empty_outputs": 2, "stream_chunks": 0})
    assert not empty.passed
    assert empty.problems == ["all 2 completions came back empty", "the streamed chat completion sent no text"]
    assert SmokeResult(**{**good, "empty_outputs": 1}).passed  # one empty answer can be the model's own
    assert not SmokeResult(**{**good, "bad_requests": {"bad JSON": 500}}).passed


def test_distil_train_fields_keep_the_distillation_defaults():
    from llmcycle.optimize.config import OptimizeConfig

    cfg = OptimizeConfig.from_dict({"methods": ["distil"], "distil": {"train": {"max_steps": 300}}})
    assert cfg.distil.train.method == "full" and cfg.distil.train.max_steps == 300
    assert cfg.distil.train.learning_rate == 3e-4
    from llmcycle.cli.onestage import one_stage_recipe

    # the example of `llmcycle optimize --help`, as typed
    recipe = one_stage_recipe("optimize", "builtin:tiny-t5", {}, {"methods": ["distil"]}, ["distil.train.max_steps=300"])
    train = recipe.stage_configs()[0][1].distil.train
    assert (train.method, train.max_steps, train.batch_size) == ("full", 300, 8)


def test_info_on_an_int8_model_counts_its_int8_weights(tmp_path, load_builtin, monkeypatch, capsys):
    from llmcycle.models.quantized import count_params
    from llmcycle.optimize.measure import save_variant
    from llmcycle.optimize.quantize import quantize_int8

    q = quantize_int8(load_builtin("tiny-t5"))
    save_variant(q, tmp_path / "int8")
    code, out, _ = run_cli(monkeypatch, capsys, "info", str(tmp_path / "int8"))
    assert code == 0 and "int8 dynamic quantisation" in out
    assert f"{count_params(q.model):,}" in out and count_params(q.model) > 1_000_000
    assert "0.00 GB" not in out and " MB" in out


def test_zero3_says_what_the_total_is_a_multiple_of(monkeypatch, capsys):
    code, out, _ = run_cli(monkeypatch, capsys, "estimate", "memory", "--params", "7.5e9", "--dtype", "fp16",
                           "--mixed-precision", "--parallelism", "zero3", "--n-gpus", "64")
    assert code == 0 and "136.0x" not in out
    assert "total per GPU = 31.88 GB = 2.1x the whole model's weights (15.00 GB in fp16); each GPU holds 0.23 GB" in out


def test_the_rollback_message_says_when_no_check_passed():
    from llmcycle.alignment.ppo import _rollback_target

    warned = [{"step": 0, "warnings": ["distinct-2 0.10 < 0.30"]}, {"step": 4, "warnings": ["kl 3 > 2"]}]
    assert "no check passed" in _rollback_target(0, warned) and "distinct-2" in _rollback_target(0, warned)
    assert _rollback_target(4, [{"step": 0, "warnings": []}, {"step": 4, "warnings": []}]) == \
        "the last check that passed"


def test_serve_logs_each_line_once(monkeypatch, capsys):
    from llmcycle.serving import server

    logger = logging.getLogger("llmcycle.serving")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    root = logging.getLogger()
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    root.addHandler(handler)
    try:
        server._log_to_stderr()
        logger.info("GET /health 200")
    finally:
        root.removeHandler(handler)
    assert seen == [] and "GET /health 200" in capsys.readouterr().err  # its own handler, not the root's too


def test_a_toxicity_label_is_chosen_in_a_recipe_and_on_the_command_line(monkeypatch):
    from llmcycle.alignment.align import AlignConfig
    from llmcycle.cli.onestage import one_stage_recipe
    from llmcycle.evaluation.evaluate import EvaluateConfig

    cfg = EvaluateConfig.from_dict({"toxicity_scorer": "my/classifier", "toxicity_label": "toxic"})
    assert cfg.toxicity_label == "toxic"
    align = AlignConfig.from_dict({"evaluation": {"scorer": "my/classifier", "scorer_label": "nothate"}})
    assert align.evaluation.eval_kwargs()["scorer_label"] == "nothate"
    recipe = one_stage_recipe("align", "builtin:tiny-t5", {}, {}, ["evaluation.scorer=x/y",
                                                                  "evaluation.scorer_label=hate"])
    assert recipe.stage_configs()[0][1].evaluation.scorer_label == "hate"


def test_a_templates_file_is_used_from_the_command_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "mine.yaml").write_text("- name: mine-polite\n  text: 'Please summarise: {dialogue}'\n")
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "prompt-lab", "builtin:tiny-t5", "--templates-file", "mine.yaml",
                             "--template", "mine-polite", "--shots", "0", "--setting", "greedy", "--n", "1",
                             "--max-new-tokens", "2")
    assert code == 0, err
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "recipe.json").read_text())["templates_file"] == "mine.yaml"
    grid = (run / "01-prompt_lab" / "section.md").read_text()
    assert "mine-polite" in grid


def test_wordpiece_summaries_read_like_dialogsum():
    from llmcycle.models.tokenizer import decode_text, offline_tokenizer

    tok = offline_tokenizer()
    text = "#Person2#'s friend Betty's paper is well-known (really), isn't it? It costs $5 - 10% off."
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert decode_text(tok, ids) == ("#Person2#'s friend betty's paper is well-known (really), isn't it? it costs "
                                     "$5-10% off.")
