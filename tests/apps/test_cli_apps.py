"""The integrate commands as a user meets them: `rag index` / `rag query` on files, a refused sandbox leaves
nothing behind, help and one-line errors, and `llmcycle plan` of the shipped apps recipe."""

from __future__ import annotations

import pytest

from tests.cli_helpers import run_cli


@pytest.mark.parametrize("sub", ["rag", "pal", "agent", "cot"])
def test_help(monkeypatch, capsys, sub):
    code, out, _ = run_cli(monkeypatch, capsys, sub, "--help")
    assert code == 0 and "Usage" in out and "--endpoint" in out


def test_rag_index_then_query_files(monkeypatch, capsys, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "warranty.md").write_text("# Warranty\n\nThe Vortex 500 vacuum has a two-year warranty on its motor.")
    (docs / "bread.txt").write_text("Sourdough bread needs flour, water, salt and a starter.")
    out_dir = tmp_path / "idx"
    code, out, err = run_cli(monkeypatch, capsys, "rag", "index", str(docs), "--out", str(out_dir),
                             "--chunk-tokens", "32", "--chunk-overlap", "8")
    assert code == 0, err
    assert "saved:" in out and "2 documents" in out and (out_dir / "settings.json").is_file()
    code, out, err = run_cli(monkeypatch, capsys, "rag", "query", str(out_dir), "is my vacuum motor under "
                             "guarantee?", "--k", "1")
    assert code == 0, err
    assert "warranty.md#0" in out and "Vortex 500" in out
    code, out, err = run_cli(monkeypatch, capsys, "rag", "query", str(out_dir), "vacuum warranty?", "--k", "2",
                             "--model", "builtin:tiny-llama", "--max-new-tokens", "4")
    assert code == 0, err
    assert "passages in the prompt" in out and "answer:" in out and "cites:" in out


def test_rag_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, _, err = run_cli(monkeypatch, capsys, "rag", "bogus")
    assert code == 1 and err.strip() == "error: rag: unknown action 'bogus'; valid: index, query, eval"
    code, _, err = run_cli(monkeypatch, capsys, "rag", "query", str(tmp_path), "q")
    assert code == 1 and "not a saved index" in err and len(err.strip().splitlines()) == 1


def test_pal_without_bubblewrap_refuses_and_leaves_nothing(monkeypatch, capsys, tmp_path):
    import llmcycle.apps.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "bwrap_path", lambda: None)
    runs = tmp_path / "runs"
    code, _, err = run_cli(monkeypatch, capsys, "pal", "builtin:tiny-llama", "--n", "1", "--runs-dir", str(runs))
    assert code == 1 and "apt-get install bubblewrap" in err and "--unsafe-no-sandbox" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_plan_prints_the_apps_recipe(monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, "plan", "apps-qwen2.5-1.5b-instruct")
    assert code == 0, err
    for stage in ("01-rag", "02-cot", "03-pal", "04-agent"):
        assert stage in out
    assert "trajectories.jsonl" in out and "Qwen/Qwen2.5-1.5B-Instruct" in out
