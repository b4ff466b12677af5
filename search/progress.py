"""A sweep's progress in one line: trials done (and how many of them the
scheduler stopped), running and to come, the best so far and the elapsed
time. On a terminal the line is rewritten in place; redirected, it is
printed once a minute and at the end, so the output's length does not grow
with the sweep's duration (Ray Tune's own table, 15 lines and more every
30 s, is what ``-v`` shows instead).

:class:`ProgressLine` is the Ray Tune callback that composes the line in the
driver; it hands it to a writer: :class:`LineWriter` on the driver's
standard error, which for a sweep driven on the head through Ray Client is
the channel that carries its lines to the client
(:mod:`scenetune.search.client_driver`), which relays it.
"""

from __future__ import annotations

import sys
import time

from ray.tune import Callback

from scenetune.search.finished_trials import ENDED

MINUTE = 60.0


class LineWriter:
    """Writes progress lines to ``stream``: in place on a terminal (``\\r``,
    cleared to the line's end), else at most one every ``every`` seconds."""

    def __init__(self, stream=None, every: float = MINUTE, terminal: bool | None = None):
        # None: sys.stderr as it is when a line is written (a redirected one, in
        # a task on the head), and nothing unpicklable kept: Ray Tune pickles its
        # callbacks with the experiment.
        self._stream, self._terminal = stream, terminal
        self.every, self.last_shown, self.pending = every, None, None

    @property
    def stream(self):
        return self._stream or sys.stderr

    @property
    def terminal(self) -> bool:
        return self.stream.isatty() if self._terminal is None else self._terminal

    def update(self, line: str) -> None:
        if self.terminal:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self.pending = None
            return
        now = time.monotonic()
        if self.last_shown is None or now - self.last_shown >= self.every:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.last_shown, self.pending = now, None
        else:
            self.pending = line

    def finish(self, line: str | None = None) -> None:
        """The last line, always shown, and the line ended."""
        line = line or self.pending
        if self.terminal:
            self.stream.write(("\r" + line + "\x1b[K" if line else "") + "\n")
        elif line:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.pending = None


def _elapsed(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:d}:{seconds:02d}"


class ProgressLine(Callback):
    """Composes the sweep's progress line from Ray Tune's trials and results,
    at most once every ``every`` seconds (composing it reads every trial: on
    every result of a sweep of thousands it was a tenth of the driver's time),
    and the last line at the sweep's end."""

    def __init__(self, metric: str, mode: str, num_samples: int, write, finish, every: float = 1.0):
        self.metric, self.mode, self.num_samples = metric, mode, num_samples
        self.write, self.finish_line, self.every = write, finish, every
        self.started = time.monotonic()
        self.shown = None
        self.best, self.best_trial = None, None
        self.stopped: set[str] = set()
        self.counted_list, self.prefix, self.prefix_errored, self.prefix_stopped = None, 0, 0, 0

    def _count_ended_prefix(self, trials) -> None:
        """Count the ended trials at the head of Ray's list once: an ended trial
        stays ended in a run, so each line reads only the trials after them
        (at 10,000 trials, reading all of them once a second cost the driver
        7 ms a trial). A new list (a restored sweep's) starts the count again."""
        if trials is not self.counted_list:
            self.counted_list, self.prefix, self.prefix_errored, self.prefix_stopped = trials, 0, 0, 0
        while self.prefix < len(trials) and trials[self.prefix].status in ENDED:
            trial = trials[self.prefix]
            self.prefix += 1
            self.prefix_errored += trial.status == "ERROR"
            self.prefix_stopped += trial.trial_id in self.stopped

    def _show(self, trials) -> None:
        now = time.monotonic()
        if self.shown is None or now - self.shown >= self.every:
            self.shown = now
            self.write(self.line(trials))

    def line(self, trials) -> str:
        self._count_ended_prefix(trials)
        rest = trials[self.prefix:]
        ended_ids = {t.trial_id for t in rest if t.status in ENDED}
        ended = self.prefix + len(ended_ids)
        errored = self.prefix_errored + sum(t.status == "ERROR" for t in rest)
        stopped = self.prefix_stopped + len(self.stopped & ended_ids)
        running = sum(t.status == "RUNNING" for t in rest)
        waiting = sum(t.status in ("PENDING", "PAUSED") for t in rest) + max(0, self.num_samples - len(trials))
        parts = [f"trials: {ended}/{self.num_samples} done"]
        details = [f"{n} {what}" for n, what in ((stopped, "stopped early"), (errored, "errored")) if n]
        if details:
            parts[0] += f" ({', '.join(details)})"
        parts.append(f"{running} running, {waiting} waiting")
        if self.best is not None:
            parts.append(f"best {self.metric} {self.best:.4g} ({self.best_trial})")
        parts.append(_elapsed(time.monotonic() - self.started))
        return "; ".join(parts)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and (self.best is None or (value > self.best if self.mode == "max"
                                                                       else value < self.best)):
            self.best, self.best_trial = float(value), trial.trial_id
        self._show(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        planned = trial.config.get("epochs")
        done = (trial.last_result or {}).get("training_iteration", 0)
        if isinstance(planned, int) and done < planned:
            self.stopped.add(trial.trial_id)
        self._show(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._show(trials)

    def on_step_end(self, iteration, trials, **info):
        self._show(trials)  # the elapsed time moves on a terminal between results too

    def on_experiment_end(self, trials, **info):
        self.finish_line(self.line(trials))
