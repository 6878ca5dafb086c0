"""benchmarks/gpu.py's coordinator (issue 48) on the CPU: time boxes, the budget, the results file and its tables.
The parts themselves need a GPU; `python -m benchmarks.gpu --dry-run` runs each for a few steps on the CPU."""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))  # the checkout's benchmarks/ package, wherever pytest starts

from benchmarks import common, gpu  # noqa: E402


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_a_part_gives_the_json_on_its_last_line_and_an_overrun_is_killed_with_its_children():
    assert gpu.run_boxed(python("import sys; print('noise'); print('why', file=sys.stderr); print('{\"x\": 1}')"),
                         30) | {"wall_s": 0} == {"status": "ok", "wall_s": 0, "x": 1, "log": "why"}
    started = time.monotonic()
    # the child starts a grandchild that would outlive it; killing the group ends both at once
    slow = gpu.run_boxed(python("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
                                "'import time; time.sleep(60)']); print('started', flush=True); time.sleep(60)"), 2)
    assert slow["status"] == "timed out after 2 s" and "started" in slow["log"] and time.monotonic() - started < 10
    failed = gpu.run_boxed(python("raise SystemExit('no pythae here')"), 30)
    assert failed["status"] == "failed (exit 1)" and "no pythae here" in failed["log"]
    assert gpu.run_boxed(python("print('not json')"), 30)["status"] == "failed (no JSON figures on its last line)"


def test_parts_run_in_order_within_the_budget_and_each_outcome_is_saved_at_once(monkeypatch):
    monkeypatch.setattr(gpu, "FLOOR_SECONDS", 2)
    parts = [gpu.Part("a", 30, None), gpu.Part("b", 30, None), gpu.Part("c", 30, None)]
    commands = {"a": python("print('{\"n\": 1}')"), "b": python("import time; time.sleep(30)"),
                "c": python("print('{\"n\": 3}')")}
    record, saved = {}, []
    budget = 4  # b's time box is cut to what is left: it overruns it, and c finds too little
    gpu.run_parts(parts, lambda part: commands[part.name], budget, record, lambda: saved.append(dict(record)))
    assert record["a"]["n"] == 1 and record["b"]["status"].startswith("timed out")
    assert record["c"]["status"].startswith("skipped:")
    assert [list(s) for s in saved] == [["a"], ["a", "b"], ["a", "b", "c"]]


def test_the_tables_and_targets_read_every_figure_and_name_what_is_missing():
    record = {
        "mlp-b128": {"status": "ok", "wall_s": 80, "design": "mlp", "batch": 128, "rows": [
            {"peer": "vaekit", "samples_per_s": 90_000.0, "vs_plain": 1.2, "vs_pythae": 4.0, "gpu_peak_mb": 30.0},
            {"peer": "pythae", "samples_per_s": 22_500.0, "vs_plain": 0.3, "vs_pythae": 1.0}]},
        "conv-b128": {"status": "timed out after 95 s", "wall_s": 95},
        "nll": {"status": "ok", "wall_s": 20, "k": 1000, "images": 10_000, "nll": 240.1, "seconds": 0.5,
                "flop_floor_seconds": 0.125, "vs_flop_floor": 4.0, "byte_floor_seconds": 0.02, "vs_byte_floor": 25.0,
                "gpu_peak_mb": 900.0},
    }
    met = {row["target"]: row["met"] for row in gpu.targets(record)}
    assert met == {"MLP b128: vaekit >= 1.5x pythae": True, "MLP b128: vaekit >= 1.0x the plain loop": True,
                   "conv b128: vaekit >= 1.5x pythae": None, "NLL k=1000 within 2x of its FLOP bound": False}
    text = gpu.tables(record)
    assert "| mlp b128 | vaekit | 90,000 |" in text and "timed out after 95 s" in text
    assert "| 1000 | 10,000 | 240.10 |" in text


def test_the_results_file_is_named_after_the_gpu_and_a_rerun_keeps_the_other_parts(tmp_path, monkeypatch):
    assert gpu.tag_of("NVIDIA H100 80GB HBM3") == "h100" and gpu.tag_of("NVIDIA H200") == "h200"
    assert gpu.tag_of("NVIDIA A100-SXM4-40GB") == "a100" and gpu.tag_of(None) == "gpu"
    monkeypatch.setattr(gpu, "RESULTS", tmp_path)
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    (tmp_path / "gpu_dryrun.json").write_text(json.dumps({"parts": {"nll": {"status": "ok", "wall_s": 1}}}))
    monkeypatch.setattr(gpu, "run_boxed", lambda command, seconds: {"status": "ok", "wall_s": 2, "command": command})
    gpu.main(["--dry-run", "--parts", "tests"])
    saved = json.loads((tmp_path / "gpu_dryrun.json").read_text())
    assert set(saved["parts"]) == {"nll", "tests"} and saved["dry_run"] and "| tests | ok | 2 |" in saved["table"]
    assert saved["parts"]["tests"]["command"][-3:] == ["--child", "tests", "--dry-run"]
    with pytest.raises(SystemExit, match="unknown part warp: choose from mlp-b128"):
        gpu.main(["--dry-run", "--parts", "warp"])
