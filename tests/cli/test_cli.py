"""The command line as a user meets it: help, version, errors before any
work, quiet sweeps, and Ctrl-C."""

from __future__ import annotations

import glob
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from scenetune import __version__
from scenetune.cli import main
from tests.conftest import BASE_SPEC, deep_update

SCENETUNE = os.path.join(os.path.dirname(sys.executable), "scenetune")
COMMANDS = [["sweep"], ["best"], ["export"], ["report"], ["evaluate"], ["predict"], ["replay"], ["generate"],
            ["data", "synth"], ["data", "check"]]


def test_every_command_s_help_has_its_defaults_an_example_and_the_exit_codes_and_loads_nothing_heavy():
    code = ("import sys, contextlib, io\nfrom scenetune.cli import main\nout = {}\n"
            f"for command in {COMMANDS!r}:\n"
            "    buffer = io.StringIO()\n"
            "    with contextlib.redirect_stdout(buffer), contextlib.suppress(SystemExit):\n"
            "        main(command + ['--help'])\n"
            "    out[' '.join(command)] = buffer.getvalue()\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'tensorflow', 'keras', 'pandas', "
            "'optuna', 'pyarrow'})\nprint(repr((out, heavy)))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    helps, heavy = eval(run.stdout)  # noqa: S307 - our own repr
    assert heavy == []
    for command, text in helps.items():
        assert f"usage: scenetune {command}" in text and "example:\n  scenetune " in text, command
        assert "exit status:" in text and "130  interrupted" in text, command
    assert "(default: last)" in helps["best"] and "(default: 96)" in helps["data synth"]
    assert "(default: None)" not in "".join(helps.values())


def test_version():
    run = subprocess.run([SCENETUNE, "--version"], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == f"scenetune {__version__}"


@pytest.mark.parametrize("storage, reason", [("/proc/scenetune", "is not writable"),
                                             ("{file}/results", "is a file, not a folder")])
def test_storage_that_cannot_be_written_is_refused_before_the_data_check(make_spec, tmp_path, capsys,
                                                                         storage, reason):
    (tmp_path / "a-file").write_text("")
    storage = storage.format(file=tmp_path / "a-file")
    assert main(["sweep", make_spec(), "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"scenetune: error: storage: {storage} cannot hold experiments: ") and reason in err
    assert len(err.strip().splitlines()) == 1 and "data check" not in err


@pytest.mark.parametrize("args, message", [
    (["--size", "100000"], "--size must be between 8 and 2048 pixels, got 100000"),
    (["--aspect-jitter", "5"], "--aspect-jitter must be between 0 and 0.9, got 5"),
    (["--per-class", "0"], "--per-class must be between 1 and 10000, got 0"),
    (["--classes", "99"], "--classes must be between 1 and"),
])
def test_data_synth_arguments_are_bounded_with_the_flag_named(tmp_path, capsys, args, message):
    assert main(["data", "synth", str(tmp_path / "out"), *args]) == 2
    assert capsys.readouterr().err.strip().startswith(f"scenetune: error: {message}")
    assert not (tmp_path / "out").exists()


def spec_file(tmp_path, synth_root, changes: dict) -> str:
    spec = deep_update(BASE_SPEC, {"data": {"root": synth_root}, "storage": str(tmp_path / "results")})
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(deep_update(spec, changes)))
    return str(path)


NOISE = {"TensorFlow start-up": "absl::InitializeLog", "oneDNN": "oneDNN custom operations",
         "a trial's config box": "started with configuration", "a trial's result box": "completed after",
         "the TensorBoard hint": "tensorboard --logdir", "the snapshot warning": "snapshotting",
         "Optuna's study line": "A new study created", "Ray's token warning": "Token authentication",
         "a colour code": "\x1b["}


@pytest.mark.slow
def test_a_sweep_is_quiet_unless_verbose(tmp_path, synth_root):
    """Two trials of two epochs: scenetune's lines and Ray Tune's trial
    table, none of the start-up noise; -v brings Ray Tune's trial boxes back."""
    path = spec_file(tmp_path, synth_root, {"search": {"num_samples": 2}, "checkpoint": {"num_to_keep": 1}})
    quiet = subprocess.run([SCENETUNE, "sweep", path], capture_output=True, text=True, timeout=600)
    out = quiet.stdout + quiet.stderr
    assert quiet.returncode == 0, out
    assert {what for what, text in NOISE.items() if text in out} == set()
    assert "trials: 2/2 done; 0 running, 0 waiting; best val_accuracy" in out and "trials: 2 completed" in out
    assert "Trial status:" not in out, "Ray Tune's table of trials only with -v"
    # 13 lines: a progress line a minute, not Ray Tune's table every 30 s; up to 8 more when Ray
    # ends an idle worker process in the middle of a garbage collection ("Exception ignored in ...")
    assert len(out.splitlines()) <= 25, out
    loud = subprocess.run([SCENETUNE, "sweep", path, "--name", "loud", "-v"], capture_output=True, text=True,
                          timeout=600)
    assert loud.returncode == 0 and "started with configuration" in loud.stdout + loud.stderr
    assert "Trial status: 2 TERMINATED" in loud.stdout + loud.stderr


def wait_for_a_result(experiment: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(os.path.getsize(f) for f in glob.glob(os.path.join(experiment, "*", "result.json"))):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    raise AssertionError("no trial reported")


@pytest.mark.slow
@pytest.mark.parametrize("signum,status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["Ctrl-C", "SIGTERM"])
def test_ctrl_c_or_sigterm_exits_with_the_resume_command_which_finishes_the_sweep(tmp_path, synth_root, signum,
                                                                                    status):
    # 30 short epochs: the signal comes after a trial's first one, seconds before the sweep could end
    path = spec_file(tmp_path, synth_root, {"name": "stopped", "search": {"num_samples": 2},
                                           "fixed": {"epochs": 30}})
    experiment = str(tmp_path / "results" / "stopped")
    proc = subprocess.Popen([SCENETUNE, "sweep", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_a_result(experiment, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == status, out + err
    resume = f"scenetune sweep {path} --name stopped --resume"
    assert err.rstrip().splitlines()[-1].strip() == resume, err
    assert "Tuner.restore" not in out + err and "trials:" not in out
    assert "SIGTERM received" not in err and "Fatal Python error" not in err, err  # Ray's own handler's pages

    assert main(resume.split()[1:]) == 0
    from scenetune.analysis import load_experiment
    exp = load_experiment(experiment)
    assert exp.trials["status"].tolist() == ["completed", "completed"] and exp.trials["epochs"].eq(30).all()

    states = {f: os.path.getmtime(f) for f in glob.glob(os.path.join(experiment, "experiment_state-*.json"))}
    again = subprocess.run([SCENETUNE, *resume.split()[1:]], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "is finished (2 trials); nothing to resume" in again.stderr
    assert {f: os.path.getmtime(f) for f in glob.glob(os.path.join(experiment, "experiment_state-*.json"))} == states


def wait_for_line(path, text: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until the file holds ``text``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in path.read_text():
            return
        assert proc.poll() is None, "the sweep ended"
        time.sleep(0.02)
    raise AssertionError(f"no {text!r} in {path}")


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once_and_keeps_what_was_written(tmp_path, synth_root):
    """One Ctrl-C lets Ray Tune end the run gracefully: after its last save it
    waits (up to 5 s) for each running trial's current epoch, ends the
    callbacks (the progress line's last line), and the sweep prints where the
    time went (``time: ...``) before the resume command. Epochs of a few
    seconds here, so that a second Ctrl-C, sent once Ray Tune has taken the
    first (its stop line printed), comes while that graceful stop is still
    under way: it stops at once, and nothing that follows the graceful stop
    is printed."""
    # a bigger model than the other sweeps': 3 s or so an epoch on this CPU; one Ctrl-C's stop waits out the
    # running epoch (measured with 2 s epochs: 3 to 7 s from the Ctrl-C to the exit, the "time:" line printed)
    path = spec_file(tmp_path, synth_root, {"name": "twice", "fixed": {"epochs": 30, "image_size": 160,
                                                                         "cnn_filters": 64, "cnn_blocks": 3}})
    experiment = str(tmp_path / "results" / "twice")
    out_file, err_file = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out_file, "w") as out, open(err_file, "w") as err:
        proc = subprocess.Popen([SCENETUNE, "sweep", path], stdout=out, stderr=err, text=True)
    try:
        wait_for_a_result(experiment, proc)
        proc.send_signal(signal.SIGINT)
        # Ray Tune's handler took the first Ctrl-C (its stop line, in scenetune's words) and put back the one
        # it found (run.py's _stop_at_once): its graceful stop is under way. Sent before that, the second
        # could merge with the first into one; waiting for the stop's last save, it came after the stop twice.
        wait_for_line(err_file, "scenetune: stopping", proc)
        proc.send_signal(signal.SIGINT)
        started = time.time()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = out_file.read_text(), err_file.read_text()
    assert proc.returncode == 130 and time.time() - started < 60, out + err
    assert re.search(r"scenetune sweep \S+ --name twice --resume", err)
    assert not re.search(r"^time: ", err, re.MULTILINE), f"the sweep ran on to its summary: a graceful stop\n{err}"
    assert "trials: 1/1 done" not in err, f"Ray Tune's cleanup stopped the trial and ended the callbacks\n{err}"
    from scenetune.analysis import load_experiment
    assert not load_experiment(experiment).epochs.empty


@pytest.mark.slow
def test_evaluate_names_damaged_logs_as_best_and_report_do(damaged_experiment, capsys):
    for command in (["best"], ["report", "--out", os.path.join(damaged_experiment, "..", "damaged-report")],
                    ["evaluate"]):
        main([command[0], damaged_experiment, *command[1:]])
        err = capsys.readouterr().err
        assert f"scenetune: warning: {damaged_experiment}/train_known_empty_00000: empty trial directory" in err, \
            command


def test_a_resume_through_ray_client_leaves_the_experiment_to_the_head(tmp_path, synth_root):
    """Through Ray Client the storage is the cluster's (on a real cluster the
    client may not see it): the experiment to resume is read on the head, so
    here, with nothing listening, the connection is what the one line names."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = spec_file(tmp_path, synth_root, {"name": "on-the-head"})
    run = subprocess.run([SCENETUNE, "sweep", path, "--address", f"ray://127.0.0.1:{port}", "--resume"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and run.stderr.strip().count("\n") == 0, run.stderr
    assert "nothing answers at 127.0.0.1" in run.stderr and "does not exist" not in run.stderr, run.stderr
