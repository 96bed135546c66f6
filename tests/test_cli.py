"""The `latih` command as a user runs it: one plain line and exit 2 for bad input, JSON that parses."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli, cli_runs

LATIH = Path(sys.executable).with_name("latih")


def latih(*args, workspace: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [str(LATIH)] if LATIH.exists() else [sys.executable, "-m", "core.cli"]
    env = {**os.environ, "LATIH_WORKSPACE": str(workspace)}
    return subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                           env=env, cwd=Path(__file__).resolve().parents[1])


def assert_one_line_error(done: subprocess.CompletedProcess, code: int = 2) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_missing_path(tmp_path, workspace):
    assert "does not exist" in assert_one_line_error(latih("train", tmp_path / "nowhere", workspace=workspace))


def test_single_class(make_dataset, workspace):
    data = make_dataset(("red",), n=4)
    assert "two classes" in assert_one_line_error(latih("train", data, workspace=workspace))


def test_only_text_files_named_jpg(tmp_path, workspace):
    for label in ("cats", "dogs"):
        (tmp_path / "data" / label).mkdir(parents=True)
        (tmp_path / "data" / label / "photo.jpg").write_text("not a photo at all")
    assert_one_line_error(latih("train", tmp_path / "data", workspace=workspace))
    check = latih("data", "check", tmp_path / "data", "--json", workspace=workspace)
    assert check.returncode == 1  # error-severity findings
    report = json.loads(check.stdout)
    assert any(f["severity"] == "error" for f in report["findings"])


@pytest.mark.parametrize("flags", [["--epochs", "0"], ["--epochs", "many"], ["--strategy", "bogus"],
                                   ["--val-fraction", "2"], ["--lr", "-1"], ["--image-size", "5"]])
def test_bad_flag_values(make_dataset, workspace, flags):
    data = make_dataset(("red", "green"), n=4)
    assert_one_line_error(latih("train", data, *flags, workspace=workspace))


def test_unknown_run(workspace):
    assert "no run" in assert_one_line_error(latih("predict", "no-such-run", "x.jpg", workspace=workspace))


def test_train_predict_runs_repeat_json(make_dataset, workspace, tmp_path):
    data = make_dataset(("red", "green"), n=8)
    done = latih("train", data, "--image-size", "64", "--epochs", "3", "--lr", "0.01", "--augment", "none",
                 "--json", workspace=workspace)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"run_dir", "backbone", "strategy", "best_epoch", "val_acc", "val_f1", "wall_s"} <= set(result)
    assert result["strategy"] == "feature-extraction" and Path(result["run_dir"]).parent == workspace / "runs"

    predicted = latih("predict", result["run_dir"], data / "red", "--top-k", "2", "--json",
                      "--csv", tmp_path / "out.csv", workspace=workspace)
    assert predicted.returncode == 0, predicted.stderr
    rows = json.loads(predicted.stdout)
    assert len(rows) == 8 and all(len(r["top_k"]) == 2 for r in rows)
    assert (tmp_path / "out.csv").exists()

    listed = json.loads(latih("runs", "--json", workspace=workspace).stdout)
    assert [r["run_dir"] for r in listed] == [result["run_dir"]]

    config = Path(result["run_dir"]) / "config.json"
    from_config = latih("train", data, "--config", config, "--epochs", "2", "--json", workspace=workspace)
    assert from_config.returncode == 0, from_config.stderr
    second = json.loads(from_config.stdout)
    assert json.loads((Path(second["run_dir"]) / "config.json").read_text())["epochs"] == 2


def test_data_check_text_and_json(make_dataset, workspace):
    data = make_dataset(("red", "green"), n=12, split={"train": 10, "val": 2})
    text = latih("data", "check", data, workspace=workspace)
    assert text.returncode == 0 and "train: green 10, red 10" in text.stdout
    report = json.loads(latih("data", "check", data, "--json", workspace=workspace).stdout)
    assert report["counts"]["val"] == {"green": 2, "red": 2}


@pytest.mark.parametrize(("lang", "words"), [("en", "Could not use /data/klinik: permission denied"),
                                              ("id", "Tidak dapat memakai /data/klinik: akses ditolak")])
def test_a_refused_file_is_one_plain_line_in_the_users_language_not_a_bug(monkeypatch, workspace, capsys,
                                                                           lang, words):
    """A folder the user may not read is their machine's answer, not a Latih bug: one line in
    LATIH_LANG (strerror is always English), no "this is a bug", no log hunt."""
    def refused(args):
        raise PermissionError(13, "Permission denied", "/data/klinik")

    monkeypatch.setenv("LATIH_LANG", lang)
    monkeypatch.setattr(cli_runs, "cmd_runs", refused)
    assert cli.main(["--workspace", str(workspace), "runs"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0] and "bug" not in err[0] and "Permission denied" not in err[0]


def test_unexpected_failure_is_one_line_pointing_at_the_log(monkeypatch, workspace, capsys):
    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli_runs, "cmd_runs", broken)
    assert cli.main(["--workspace", str(workspace), "runs"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "this is a bug" in err[0] and "latih.log" in err[0]
    assert "RuntimeError: boom" in (workspace / "logs" / "latih.log").read_text()


def test_every_train_flag_has_plain_help():
    parser = cli.build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    for action in train._actions:
        assert action.help, action.dest


def test_predict_with_an_unfinished_run_warns_in_bahasa(make_dataset, workspace, monkeypatch, capsys):
    """`latih predict` on a run that stopped early still answers, and its warning is one Bahasa line
    (it was English under LATIH_LANG=id)."""
    from core import runs
    from core.config import TrainConfig
    from core.i18n import Msg
    from core.train import train

    data = make_dataset(("red", "green"), n=6)
    result = train(TrainConfig(data_path=str(data), image_size=64, epochs=1, augment="none"), workspace=workspace)
    runs.write_status(result.run_dir, "stopped", Msg("phase.preparing"))  # as if the user pressed Stop
    monkeypatch.setenv("LATIH_LANG", "id")
    assert cli.main(["--workspace", str(workspace), "predict", str(result.run_dir), str(data / "red")]) == 0
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("peringatan: sesi "), captured.err
    assert "tidak selesai (dihentikan: menyiapkan foto)" in warning[0] and "did not finish" not in warning[0]
    assert len(captured.out.strip().splitlines()) == 6  # every photo still gets its answer


def test_train_summary_names_the_state_in_bahasa(make_dataset, workspace, monkeypatch, capsys):
    """`latih train`'s last line names the run's state through core.runs.state_word, in LATIH_LANG."""
    data = make_dataset(("red", "green"), n=6)
    monkeypatch.setenv("LATIH_LANG", "id")
    assert cli.main(["--workspace", str(workspace), "train", str(data), "--image-size", "64", "--epochs", "1",
                     "--augment", "none"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert any(line.startswith("selesai dalam ") and "putaran terbaik 1" in line for line in lines), lines


def test_what_the_system_said_is_in_the_users_words_for_a_real_refusal(tmp_path):
    """A real one (no mock): a folder given where the leave-out list belongs. The reason was
    strerror ("Is a directory", English whatever the language); now the catalogue's."""
    from core.data.exclude import read_list
    from core.errors import DataError, os_reason

    with pytest.raises(DataError) as caught:
        read_list(tmp_path, tmp_path)
    message = caught.value.args[0]
    assert "itu folder, bukan berkas" in message.in_lang("id") and "Is a directory" not in message.in_lang("id")
    assert "it is a folder, not a file" in message.in_lang("en")
    assert os_reason(OSError(9999, "Something odd")) == "Something odd"  # unknown errno: the system's text
