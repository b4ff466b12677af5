"""A sweep through Ray Client (``--address ray://HOST:PORT``).

Through Ray Client, Ray Tune runs the Tuner as an actor on the head node,
but what scenetune sets up around ``tuner.fit()`` (its quiet output, its
fixes to Ray internals, its clock, how many trials wait for resources) would
stay in the client's process. So the whole run, from the data check to the
last trial, runs as one task on the head node (:func:`drive_on_head`), where
a ``scenetune sweep --address auto`` would run it. Its output comes back
line by line through a Ray queue; a Ctrl-C here asks it to stop as Ray Tune
stops on SIGUSR1 (saving the experiment's state), a second one cancels it.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
import threading

import ray
from ray.util.queue import Empty, Queue

from scenetune.core.errors import UserError

HEAD = "node:__internal_head__"  # the resource only the head node has
NO_CPU = {"num_cpus": 0}


class QueueStream(io.TextIOBase):
    """A text stream that puts each whole line on ``queue`` as ``(name, line)``."""

    def __init__(self, queue: Queue, name: str):
        super().__init__()
        self.queue, self.name, self.pending = queue, name, ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.pending += text
        if "\n" in self.pending:
            whole, self.pending = self.pending.rsplit("\n", 1)
            self.queue.put((self.name, whole + "\n"))
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.queue.put((self.name, self.pending))
            self.pending = ""


def _stop_when_asked(stop: Queue, done: threading.Event) -> None:
    """Turn a stop request into SIGUSR1 for this process: Ray Tune's signal
    to end the run after saving its state (it handles it in the main thread,
    where this task runs)."""
    while not done.is_set():
        try:
            stop.get(timeout=0.5)
        except Empty:
            continue
        os.kill(os.getpid(), signal.SIGUSR1)
        return


@ray.remote(max_retries=0, **NO_CPU)
def drive_on_head(spec, resume: bool, verbose: bool, clock, output: Queue, stop: Queue, warm=None) -> bool:
    """The driver's part of a sweep, on the head node; True when it ended
    before every trial did (Ctrl-C)."""
    from scenetune.search.run import drive

    done = threading.Event()
    previous = signal.signal(signal.SIGUSR1, lambda *_: None)  # a stop before Ray Tune starts: ignored
    watcher = threading.Thread(target=_stop_when_asked, args=(stop, done), daemon=True)
    watcher.start()
    out, err = QueueStream(output, "out"), QueueStream(output, "err")
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return drive(spec, resume, verbose, clock, warm=warm)
    finally:
        out.flush()
        err.flush()
        done.set()
        signal.signal(signal.SIGUSR1, previous)


def drive_through_client(spec, resume: bool, verbose: bool, clock, warm=None) -> bool:
    """Run :func:`drive_on_head` and relay its output here until it ends;
    True when the sweep was interrupted."""
    output, stop = Queue(actor_options=NO_CPU), Queue(actor_options=NO_CPU)
    task = drive_on_head.options(resources={HEAD: 0.001}).remote(spec, resume, verbose, clock, output, stop, warm)
    stopping = False
    try:
        while True:
            try:
                relay_until_done(task, output)
                return ray.get(task)
            except ray.exceptions.RayTaskError as e:
                if isinstance(e.cause, UserError):  # a spec or experiment the head refused: one line
                    raise e.cause from None
                raise
            except KeyboardInterrupt:
                if stopping:
                    ray.cancel(task, force=True)
                    raise
                stopping = True
                stop.put("stop")
                print("scenetune: stopping: Ray Tune saves the sweep's state (Ctrl-C again stops at once)",
                      file=sys.stderr, flush=True)
    finally:
        for queue in (output, stop):
            queue.shutdown()


def relay_until_done(task, output: Queue, every: float = 0.2) -> None:
    while True:
        ready, _ = ray.wait([task], timeout=every)
        relay(output)
        if ready:
            relay(output)  # the last lines put before it ended
            return


def relay(output: Queue) -> None:
    count = output.qsize()
    if count:
        for name, line in output.get_nowait_batch(count):
            stream = sys.stdout if name == "out" else sys.stderr
            stream.write(line)
            stream.flush()
