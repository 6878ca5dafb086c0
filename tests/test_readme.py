"""The README's Python snippets run as written, and its set-up commands exist."""

import re
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def test_python_snippets_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
    assert (tmp_path / "runs" / "readme" / "report.html").exists()
    assert (tmp_path / "runs" / "readme" / "samples.png").exists()
    printed = capsys.readouterr().out
    assert " active units" in printed and not re.search(r"\b0 active units", printed)  # the example trains, not collapses
    assert not re.search(r"KL 0\.[0-4]\d nats", printed)


def test_setup_commands_exist_and_ci_runs_the_test_command():
    text = README.read_text()
    root = README.parent
    for script in re.findall(r"^bash (scripts/\S+)", text, re.M):
        assert (root / script).exists(), script
    assert "bash scripts/test.sh" in (root / ".ci" / "run").read_text()
