"""The progress line's writer: rewritten in place on a terminal; redirected,
one line per interval and the last one at the end, so the output's length
does not grow with the sweep's duration; the line itself composed at most
once a second."""

import io
import time
import types

from scenetune.search.progress import LineWriter, ProgressLine


def test_redirected_lines_come_once_an_interval_and_the_last_at_the_end():
    out = io.StringIO()
    writer = LineWriter(out, every=3600, terminal=False)
    for done in range(1, 101):
        writer.update(f"trials: {done}/100 done")
    writer.finish()
    assert out.getvalue().splitlines() == ["trials: 1/100 done", "trials: 100/100 done"]


def test_on_a_terminal_the_line_is_rewritten_in_place():
    out = io.StringIO()
    writer = LineWriter(out, terminal=True)
    writer.update("trials: 1/2 done")
    writer.update("trials: 2/2 done")
    writer.finish("trials: 2/2 done; best 0.9")
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\r" + "trials: 2/2 done; best 0.9" + "\x1b[K\n")


def test_the_writer_pickles_without_its_stream():
    import pickle

    writer = LineWriter()  # sys.stderr, looked up when a line is written: Ray Tune pickles its callbacks
    assert pickle.loads(pickle.dumps(writer)).stream is not None


def trials_of(statuses: str) -> list:
    """Trials as Ray Tune hands them to its callbacks (what the line reads of them)."""
    names = {"R": "RUNNING", "P": "PENDING", "T": "TERMINATED", "E": "ERROR"}
    return [types.SimpleNamespace(trial_id=f"t{i}", status=names[s], config={}, last_result={})
            for i, s in enumerate(statuses)]


def test_the_line_is_composed_at_most_once_a_second_and_the_last_one_at_the_end():
    """Composing the line reads every trial: on every result of a sweep of
    thousands that cost the driver a tenth of its time (benchmarks/driver_scale.py)."""
    shown, last = [], []
    progress = ProgressLine("val_accuracy", "max", 4, shown.append, last.append, every=1.0)
    trials = trials_of("RRPP")
    for value in (0.1, 0.5, 0.3):
        progress.on_trial_result(1, trials, trials[0], {"val_accuracy": value})
        progress.on_step_end(1, trials)
    assert shown == ["trials: 0/4 done; 2 running, 2 waiting; best val_accuracy 0.1 (t0); 0:00"]
    time.sleep(1.05)
    progress.on_trial_complete(2, trials_of("TRRP"), trials[0])
    assert len(shown) == 2 and shown[-1].startswith("trials: 1/4 done; 2 running, 1 waiting; best val_accuracy 0.5")
    progress.on_trial_error(3, trials_of("TERR"), trials[1])
    assert len(shown) == 2, "within the second"
    progress.on_experiment_end(trials_of("TETT"))
    assert last == ["trials: 4/4 done (1 errored); 0 running, 0 waiting; best val_accuracy 0.5 (t0); 0:01"]
