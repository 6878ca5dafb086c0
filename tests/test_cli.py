"""Every core CLI subcommand on tiny data, and every user mistake the core issue lists:
one line on stderr, exit code 2, no traceback, nothing overwritten."""

import argparse
import ast
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vaekit.cli
from vaekit.cli import build_parser, main

CORE = {"train", "eval", "sample", "reconstruct", "interpolate", "embed", "sweep", "report", "demo"}
TINY = ["--data", "digits", "--hidden", "32", "--latent-dim", "2", "--epochs", "1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(path)]) == 0
    return path


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_every_core_subcommand_is_covered():
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert CORE <= names
    tested = {"train", "eval", "sample", "reconstruct", "interpolate", "embed", "sweep", "report", "demo"}
    assert tested == CORE


def test_subcommands_write_their_outputs(run_dir, tmp_path, capsys):
    assert main(["eval", str(run_dir), "--k", "5"]) == 0
    result = json.loads((run_dir / "eval-k5.json").read_text())
    assert {"neg_elbo", "reconstruction", "kl", "nll", "k", "bits_per_dim", "active_units", "knn_accuracy"} <= set(result)
    assert result["nll"] <= result["neg_elbo"] + 0.5 and result["k"] == 5
    assert main(["sample", str(run_dir), "-n", "16", "-o", str(tmp_path / "s.png")]) == 0
    assert main(["reconstruct", str(run_dir)]) == 0
    assert main(["interpolate", str(run_dir), "--spherical", "--steps", "5"]) == 0
    assert main(["embed", str(run_dir), "-o", str(tmp_path / "z.csv")]) == 0
    assert main(["report", str(run_dir)]) == 0
    for name in ("reconstructions.png", "interpolation.png", "report.html", "curves.png"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (tmp_path / "latent_map.png").exists() and (tmp_path / "s.png").exists()
    header = (tmp_path / "z.csv").read_text().splitlines()[0]
    assert header == "z0,z1,label"
    from PIL import Image

    grid = np.asarray(Image.open(tmp_path / "s.png"))
    assert grid.std() > 5, "a sample grid should not be blank"


def test_sweep_and_demo(tmp_path):
    assert main(["sweep", *TINY, "--latent-dims", "1,2", "--k", "3", "--out", str(tmp_path / "sweep")]) == 0
    rows = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [row["latent_dim"] for row in rows] == [1, 2]
    assert (tmp_path / "sweep" / "sweep.png").exists()
    assert main(["demo", "--data", "digits", "--epochs", "1", "--k", "3", "--out", str(tmp_path / "demo")]) == 0
    assert "<img" in (tmp_path / "demo" / "report.html").read_text()


def test_help_answers_fast_without_importing_torch():
    code = "import sys, vaekit.cli as c\ntry:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def _commands(parser: argparse.ArgumentParser, argv: tuple[str, ...] = ()):
    """(argv, parser) of every subcommand and verb under `parser`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*argv, name), sub
                yield from _commands(sub, (*argv, name))


def _shown(default) -> str:
    return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)


def test_every_subcommands_help_runs_and_shows_each_flags_default(capsys):
    commands = list(_commands(build_parser()))
    assert len(commands) > 40
    for argv, parser in commands:
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--help"])
        assert stop.value.code == 0, argv
        assert capsys.readouterr().out.startswith(f"usage: vaekit {' '.join(argv)}"), argv
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            flag = f"vaekit {' '.join(argv)} {action.option_strings[0]}"
            if action.default is argparse.SUPPRESS:  # a config field's flag: its default is in its help
                assert "(default: " in action.help, flag
            elif action.default not in (None, False, (), []):
                assert f"(default: {_shown(action.default)})" in action.help, flag


@pytest.mark.parametrize("command", ["anomaly", "audio", "recommend", "tabular", "text"])
def test_a_command_without_its_verb_names_the_verbs_in_one_line(command, capsys):
    err = _error(capsys, [command])
    verbs = next(a for a in build_parser()._subparsers._group_actions[0].choices[command]._actions
                 if isinstance(a, argparse._SubParsersAction)).choices
    assert all(verb in err for verb in verbs) and f"vaekit {command}" in err


def test_cli_modules_only_parse_and_call_their_use_in_apps():
    """Each cli/<use>.py imports its apps/<use>, and nothing that computes: argparse, vaekit's apps, configs
    (vaekit.config and the light <package>.config modules), errors and the cli's own helpers."""
    folder = Path(vaekit.cli.__file__).parent
    uses = sorted(path for path in folder.glob("*.py") if path.stem not in ("__init__", "flags"))
    assert {path.stem for path in uses} == {use.__name__.rpartition(".")[2] for use in vaekit.cli.USES}
    allowed = ("vaekit.apps", "vaekit.config", "vaekit.errors", "vaekit.cli", "vaekit.text.config",
               "vaekit.tabular.config", "vaekit.compression.config")
    for path in uses:
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level:  # from ..apps import text -> vaekit.apps.text
                base = ".".join(["vaekit", "cli"][:3 - node.level] + ([node.module] if node.module else []))
                imported.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module)
        app = f"vaekit.apps.{path.stem}"
        assert any(name == app or name.startswith(f"{app}.") for name in imported), f"cli/{path.name} skips {app}"
        strays = {name for name in imported - {"argparse", "__future__"} if not name.startswith(allowed)}
        assert not strays, f"cli/{path.name} imports {strays}: computing belongs in apps/"


def test_no_traceback_through_the_real_entry_point(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "vaekit", "eval", str(tmp_path / "missing")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "not found" in proc.stderr


def _write_idx_gz(path: Path, payload: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(payload)


@pytest.mark.parametrize("case", ["missing", "truncated_idx", "corrupt_gzip", "nan", "empty", "unknown_name",
                                  "mixed_sizes"])
def test_bad_data_gets_one_line_errors(case, tmp_path, capsys):
    target = tmp_path / "data"
    if case == "missing":
        target = tmp_path / "nope.npy"
    elif case == "truncated_idx":
        target = tmp_path / "images-idx3-ubyte.gz"
        header = bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (4).to_bytes(4, "big") * 2
        _write_idx_gz(target, header + bytes(50))
    elif case == "corrupt_gzip":
        target = tmp_path / "images-idx3-ubyte.gz"
        target.write_bytes(b"\x1f\x8b\x08\x00garbage")
    elif case == "nan":
        target = tmp_path / "x.npy"
        np.save(target, np.array([[0.1, np.nan], [0.2, 0.3]] * 10, dtype=np.float32))
    elif case == "empty":
        target = tmp_path / "x.npy"
        np.save(target, np.zeros((0, 4), np.float32))
    elif case == "unknown_name":
        target = "imagenet-9000"
    elif case == "mixed_sizes":
        from PIL import Image

        target.mkdir()
        Image.new("L", (8, 8)).save(target / "a.png")
        Image.new("L", (9, 7)).save(target / "b.png")
    _error(capsys, ["train", "--data", str(target), "--epochs", "1", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_data_outside_unit_interval_for_bernoulli(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32))
    err = _error(capsys, ["train", "--data", str(tmp_path / "x.npy"), "--epochs", "1", "--out", str(tmp_path / "r")])
    assert "gaussian" in err
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--likelihood", "gaussian", "--epochs", "1",
                 "--hidden", "8", "--out", str(tmp_path / "g")]) == 0


@pytest.mark.parametrize("flags", [["--latent-dim", "0"], ["--lr", "-1"], ["--batch-size", "0"],
                                   ["--likelihood", "poisson"], ["--binarize", "sometimes"],
                                   ["--val-fraction", "1.5"], ["--gaussian-scale", "-2", "--likelihood", "gaussian"]])
def test_invalid_hyper_parameters(flags, tmp_path, capsys):
    _error(capsys, ["train", *TINY, *flags, "--out", str(tmp_path / "r")])


def test_checkpoint_problems(run_dir, tmp_path, capsys):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    config = json.loads((broken / "config.json").read_text())
    config["model"]["latent_dim"] = 7
    (broken / "config.json").write_text(json.dumps(config))
    assert "different runs" in _error(capsys, ["sample", str(broken)])
    config["format_version"] = 99
    (broken / "config.json").write_text(json.dumps(config))
    assert "version" in _error(capsys, ["sample", str(broken)])
    _error(capsys, ["eval", str(tmp_path / "nowhere")])
    _error(capsys, ["train", "--out", str(tmp_path / "fresh"), "--resume"])


def test_failed_sample_leaves_existing_output_intact(run_dir, tmp_path, capsys):
    out = tmp_path / "keep.png"
    out.write_bytes(b"precious")
    _error(capsys, ["sample", str(run_dir), "-n", "0", "-o", str(out)])
    assert out.read_bytes() == b"precious"


def test_a_quick_eval_is_written_beside_the_main_one_and_the_report_makes_what_is_missing(tmp_path, capsys):
    from vaekit.apps.images import eval_file

    assert (eval_file(), eval_file("test", 50, 500), eval_file("val", 1000), eval_file("val", 20)) == (
        "eval.json", "eval-k50-limit500.json", "eval_val.json", "eval_val-k20.json")
    run = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "active units " in out and "of 2 latent units active" in out  # each epoch's line and the last summary
    assert main(["report", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"vaekit eval {run}" in err  # one warning naming the command
    from PIL import Image

    for name in ("samples.png", "reconstructions.png", "interpolation.png"):
        top = np.asarray(Image.open(run / name).convert("L"))[:12]  # the title line: dark text on white, where a
        assert top.mean() > 200 and top.min() < 100, name  # bare grid has 14 rows of white padding
    assert (run / "latent_map.png").exists()
    assert f"vaekit eval {run}" in (run / "report.html").read_text()
    assert main(["eval", str(run), "--k", "3", "--limit", "20"]) == 0
    assert main(["eval", str(run), "--k", "4"]) == 0
    assert not (run / "eval.json").exists()
    assert json.loads((run / "eval-k3-limit20.json").read_text())["n_examples"] == 20
    capsys.readouterr()
    assert main(["report", str(run)]) == 0
    assert capsys.readouterr().err == ""
    page = (run / "report.html").read_text()
    assert "test split, the first 20 examples, k = 3 importance samples" in page
    assert "test split, all 359 examples, k = 4 importance samples" in page and "no test metrics" not in page


def test_figures_get_their_title_line_above_everything(tmp_path):
    from PIL import Image

    from vaekit.plotting import save_curves, save_latent_map

    history = [{"epoch": 1, "loss": 3.0, "reconstruction": -2.0, "kl": 1.0}]
    points, labels = np.random.default_rng(0).normal(size=(50, 2)), np.arange(50) % 3
    for name, draw in (("curves", lambda caption: save_curves(tmp_path / f"c{bool(caption)}.png", history, caption)),
                       ("map", lambda caption: save_latent_map(tmp_path / f"m{bool(caption)}.png", points, labels,
                                                               title="latent means", caption=caption))):
        bare, titled = (Image.open(draw(caption)) for caption in (None, "what | runs/x | weights of epoch 1 of 1"))
        assert titled.height > bare.height + 10, name


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_long_jobs_show_a_progress_bar_with_an_eta_on_a_terminal_only(run_dir, tmp_path, monkeypatch, capsys):
    import pandas as pd

    from vaekit.recommend import evaluate as recommend_evaluate, fit as recommend_fit

    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["eval", str(run_dir), "--k", "2", "--limit", "30"]) == 0
    table = pd.DataFrame({"x": np.arange(40.0), "c": ["a", "b"] * 20})
    table.to_csv(tmp_path / "t.csv", index=False)
    assert main(["tabular", "evaluate", str(tmp_path / "t.csv"), str(tmp_path / "t.csv"), "-o",
                 str(tmp_path / "q")]) == 0
    users = np.repeat(np.arange(30), 6)
    log = pd.DataFrame({"user": users, "item": (users * 7 + np.tile(np.arange(6), 30)) % 20})
    recommend_evaluate(recommend_fit(log, model="popularity"))
    shown = terminal.getvalue()
    for bar in ("IWAE NLL (k=2)", "quality report", "ranking held-out users"):
        assert bar in shown, bar
    assert "<" in shown and "/s]" in shown  # tqdm's elapsed<remaining, rate
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--k", "2", "--limit", "30"]) == 0
    assert "IWAE" not in capsys.readouterr().err  # not a terminal: no bar


@pytest.mark.parametrize("flags, message", [
    (["--flow-steps", "4"], "--flow-steps acts only with --posterior iaf or planar"),
    (["--posterior", "planar", "--no-flow-context"], "--flow-context acts only with --posterior iaf"),
    (["--prior-components", "10"], "--prior-components acts only with --prior mog or vamp"),
    (["--bottleneck", "fsq", "--latent-dim", "4", "--code-dim", "2"], "--code-dim acts only with --bottleneck vq"),
    (["--label-weight", "5"], "--label-weight acts only with --semi-supervised,"),
])
def test_an_option_the_chosen_model_would_not_read_is_refused_before_anything_is_written(flags, message, tmp_path,
                                                                                          capsys):
    assert message in _error(capsys, ["train", *TINY, *flags, "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


def test_a_saved_runs_config_holds_every_option_and_trains_again_with_flags_that_act(run_dir, tmp_path, capsys):
    from vaekit.apps import images
    from vaekit.errors import ConfigError

    saved = json.loads((run_dir / "config.json").read_text())["model"]
    assert saved["posterior"] == "gaussian" and "flow_steps" in saved  # unread there, and no refusal for it
    assert main(["train", "--config", str(run_dir / "config.json"), "--epochs", "1", "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "--config", str(run_dir / "config.json"), "--epochs", "1", "--posterior", "planar",
                 "--flow-steps", "3", "--out", str(tmp_path / "b")]) == 0
    assert json.loads((tmp_path / "b" / "config.json").read_text())["model"]["flow_steps"] == 3
    with pytest.raises(ConfigError, match="--prior-components acts only with"):
        images.train(tmp_path / "c", data="digits", epochs=1, prior_components=3, progress=False)


def test_a_sweep_reads_a_saved_runs_config_as_train_does_and_refuses_a_flag_its_model_would_not_read(run_dir,
                                                                                                     tmp_path, capsys):
    config = str(run_dir / "config.json")
    assert "--flow-steps acts only with" in _error(capsys, ["sweep", "--config", config, "--latent-dims", "2",
                                                            "--flow-steps", "3", "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad" / "latent-2").exists()
    assert main(["sweep", "--config", config, "--latent-dims", "3", "--epochs", "1", "--k", "2",
                 "--out", str(tmp_path / "sweep")]) == 0
    saved = json.loads((tmp_path / "sweep" / "latent-3" / "config.json").read_text())["model"]
    assert saved["latent_dim"] == 3 and saved["hidden"] == [32]  # the size given, the rest the saved run's
