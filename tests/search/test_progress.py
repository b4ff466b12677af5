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


class CountedTrial:
    """A trial whose status reads are counted."""

    reads = 0

    def __init__(self, i: int):
        self.trial_id, self._status, self.config, self.last_result = f"t{i}", "PENDING", {"epochs": 3}, {}

    @property
    def status(self) -> str:
        CountedTrial.reads += 1
        return self._status


def test_the_line_counts_as_a_full_walk_but_reads_only_the_trials_after_the_ended_ones():
    """Ended trials stay ended in a run: the ones at the head of Ray's list are
    counted once (at 10,000 trials a walk of every trial, once a second, cost
    the driver 7 ms a trial)."""
    import random

    rng = random.Random(0)
    progress = ProgressLine("val_accuracy", "max", 60, lambda line: None, lambda line: None)
    trials: list = []  # one list, grown and changed as Ray Tune's is
    for step in range(800):
        if len(trials) < 60 and rng.random() < 0.3:
            trials.append(CountedTrial(len(trials)))
        live = [t for t in trials if t._status in ("PENDING", "RUNNING", "PAUSED")]
        if live:
            trial = rng.choice(live)
            if trial._status == "RUNNING" and rng.random() < 0.5:
                trial.last_result = {"training_iteration": rng.choice([1, 3])}
                if rng.random() < 0.1:
                    trial._status = "ERROR"
                else:
                    progress.on_trial_complete(step, trials, trial)
                    trial._status = "TERMINATED"
            else:
                trial._status = rng.choice(["RUNNING", "PAUSED"])
        statuses = [t._status for t in trials]
        ended = [t for t in trials if t._status in ("TERMINATED", "ERROR")]
        stopped = sum(t.trial_id in progress.stopped for t in ended)
        errored = statuses.count("ERROR")
        details = ", ".join(f"{n} {what}" for n, what in ((stopped, "stopped early"), (errored, "errored")) if n)
        expected = (f"trials: {len(ended)}/60 done" + (f" ({details})" if details else "") +
                    f"; {statuses.count('RUNNING')} running, "
                    f"{statuses.count('PENDING') + statuses.count('PAUSED') + 60 - len(trials)} waiting")
        CountedTrial.reads, counted_before = 0, progress.prefix
        line = progress.line(trials)
        assert line.rsplit("; ", 1)[0] == expected, step
        head = next((i for i, s in enumerate(statuses) if s not in ("TERMINATED", "ERROR")), len(trials))
        # the trials after the ended head: read once per count (4); the newly ended
        # head: twice; the head counted before: not again
        assert progress.prefix == head
        assert CountedTrial.reads <= 4 * (len(trials) - head) + 2 * (head - counted_before) + 1, step
    assert progress.prefix > 40, "most trials ended, and were counted once"
