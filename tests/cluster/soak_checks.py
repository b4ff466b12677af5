"""A sweep with faults on the multi-node test cluster (raycluster.py), and
what must hold after it: shared by tests/cluster/test_soak.py (the short
version) and benchmarks/soak.py (200 trials, with and without faults).

``Soak`` runs ``scenetune sweep SPEC --address CLUSTER`` as a process and,
as the sweep's trials start, carries out a fault plan: kill a worker node
(its raylet SIGKILLed, the whole node goes) and start a fresh one in its
place, or SIGKILL the driver and finish with ``--resume``. It samples the
resident memory of the driver and of every node while it runs.

``check_experiment`` reads the experiment's files (each trial's
result.json, Ray Tune's state through ``load_experiment``, ``scenetune
best``), never the drivers' output."""

from __future__ import annotations

import csv
import glob
import json
import math
import os
import signal
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass, field

from scenetune.analysis import load_experiment
from tests.cluster.conftest import SCENETUNE, Driver

ENDED = ("completed", "stopped")  # anything else (errored, incomplete, running, ...) is a lost trial
SLACK_S = 2  # result timestamps are whole seconds of the trial's clock


def soak_spec(name: str, storage: str, data_root: str, trials: int, epochs: int, concurrent: int,
              seed: int = 0) -> dict:
    """A small classifier sweep: Optuna TPE, ASHA (scenetune's defaults:
    grace 1, factor 3, quorum 3), warm trial processes, checkpoints at the
    defaults' epochs (``auto``: every epoch of so short a trial)."""
    return {
        "name": name, "trainable": "classifier", "storage": storage,
        "data": {"dataset": "mit67", "root": data_root, "split": {"train": 0.5, "val": 0.25, "test": 0.25, "seed": 1}},
        "metric": "val_accuracy", "mode": "max",
        "search": {"algorithm": "optuna", "sampler": "tpe", "num_samples": trials, "max_concurrent": concurrent,
                   "seed": seed},
        "scheduler": {"name": "asha"},
        "resources": {"cpu": 1},
        # three node kills may hit one long trial more than once
        "failure": {"max_failures": 3},
        "space": {"learning_rate": {"loguniform": [1.0e-4, 3.0e-2]}, "dense_units": {"choice": [16, 32]},
                  "cnn_filters": {"choice": [8, 16]}},
        "fixed": {"backbone": "basic_cnn", "weights": "none", "image_size": 32, "epochs": epochs, "batch_size": 8,
                  "cnn_blocks": 2},
    }


def rows_of(trial_dir: str) -> list[dict]:
    """Every line of a trial's result.json as written, repeats included (a
    partly written last line is skipped: the driver may be writing it)."""
    rows = []
    try:
        with open(os.path.join(trial_dir, "result.json")) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    except OSError:
        pass
    return rows


def trial_dirs(experiment: str) -> list[str]:
    return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(experiment, "*", "params.json")))


def rss_mb(pids) -> float:
    """Resident memory of ``pids`` together, in MB (processes gone are skipped)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total / 2**20


@dataclass
class Fault:
    kind: str  # "node": a worker node killed (and a fresh one started); "driver": the driver SIGKILLed
    at: float  # time.time() of the kill
    node: str = ""  # the killed node's name and address
    ip: str = ""
    replacement: str = ""
    training: bool = False  # the node was training a trial when killed
    kill_s: float = 0.0  # until the node's processes were gone
    restart_s: float = 0.0  # until its replacement was alive in the GCS

    def describe(self, start: float) -> str:
        what = (f"killed worker node {self.node} ({self.ip}"
                f"{', training a trial' if self.training else ', no trial training'}) in {self.kill_s:.1f} s, started "
                f"{self.replacement} in {self.restart_s:.1f} s") if self.kind == "node" \
            else "SIGKILLed the driver, started `scenetune sweep --resume`"
        return f"{self.at - start:7.1f}s  {what}"


class Soak:
    """Run one sweep on ``cluster`` with ``plan``: ``[(kind, fraction)]``,
    each fault carried out in order once ``fraction`` of the trials have
    started (and, for the driver, once Ray Tune has saved its state)."""

    def __init__(self, cluster, spec_path: str, experiment: str, trials: int, log_dir: str,
                 plan: list[tuple[str, float]] = (), say=print, sample_every: float = 2.0,
                 status_every: float = 15.0, timeout: float = 7200):
        self.cluster, self.spec_path, self.experiment, self.trials = cluster, spec_path, experiment, trials
        self.log_dir, self.plan, self.say = log_dir, list(plan), say
        self.sample_every, self.status_every, self.timeout = sample_every, status_every, timeout
        self.faults: list[Fault] = []
        self.drivers: list[tuple[str, Driver]] = []
        self.exits: list[int] = []  # each driver's exit status (-9: killed by the plan)
        self.memory: dict[str, list[tuple[float, float]]] = {}  # label -> [(time, MB)]
        self.start = self.end = 0.0
        self.first_trial_at = self.last_trial_at = 0.0  # when the first and the last trial started
        self._stop = threading.Event()

    @property
    def wall_s(self) -> float:
        return self.end - self.start

    def _driver(self, *extra: str) -> Driver:
        label = "driver" if not self.drivers else f"driver{len(self.drivers) + 1}"
        driver = Driver(self.cluster, self.spec_path, os.path.join(self.log_dir, f"{label}.log"), *extra)
        self.drivers.append((label, driver))
        return driver

    def _sample(self) -> None:
        from tests.cluster.raycluster import descendants

        while not self._stop.is_set():
            now = time.time()
            for label, driver in list(self.drivers):
                if driver.process.poll() is None:
                    pids = [driver.process.pid, *descendants(driver.process.pid)]
                    self.memory.setdefault(label, []).append((now, rss_mb(pids)))
            for node in list(self.cluster.nodes):
                if node.alive and not node.killed:
                    self.memory.setdefault(node.name, []).append((now, rss_mb(node.processes())))
            self._stop.wait(self.sample_every)

    def run(self) -> None:
        sampler = threading.Thread(target=self._sample, daemon=True)
        self.start = time.time()
        driver = self._driver()
        sampler.start()
        last_status = self.start
        try:
            while True:
                if driver.process.poll() is not None:
                    self.exits.append(driver.process.returncode)
                    break
                if time.time() - self.start > self.timeout:
                    raise AssertionError(f"the sweep ran past {self.timeout}s:\n{driver.tail()}")
                started = len(trial_dirs(self.experiment))
                if started and not self.first_trial_at:
                    self.first_trial_at = time.time()
                if started >= self.trials and not self.last_trial_at:
                    self.last_trial_at = time.time()
                if self.plan and started >= self.plan[0][1] * self.trials:
                    kind = self.plan[0][0]
                    if kind == "node":
                        self.plan.pop(0)
                        self._kill_node()
                    elif glob.glob(os.path.join(self.experiment, "experiment_state-*.json")):
                        self.plan.pop(0)
                        driver = self._kill_driver(driver)
                if time.time() - last_status >= self.status_every:
                    last_status = time.time()
                    self.say(self.status(started))
                time.sleep(0.5)
        finally:
            self.end = time.time()
            self._stop.set()
            sampler.join(10)
            for _, each in self.drivers:  # only if something above failed
                if each.process.poll() is None:
                    each.process.kill()
                    each.process.wait(30)
        self.say(self.status(len(trial_dirs(self.experiment))) + f"; driver exited {self.exits[-1]}")

    def status(self, started: int) -> str:
        from scenetune.analysis.trial_logs import trial_states

        states = [state.get("tune_status") for state in trial_states(self.experiment, []).values()]
        rss = ", ".join(f"{n.name} {self.memory[n.name][-1][1]:.0f}" for n in self.cluster.workers()
                        if self.memory.get(n.name))
        return (f"  [{time.time() - self.start:6.0f}s] trials started {started}/{self.trials}, "
                f"ended {sum(s in ('TERMINATED', 'ERROR') for s in states)} (Ray Tune's last save), "
                f"faults {len(self.faults)}/{len(self.faults) + len(self.plan)}; worker RSS MB: {rss}")

    def _victim(self):
        """A worker node whose trial process is training (Ray titles it
        ``ray::ImplicitFunc.train``), else the first worker node. (result.json
        is no guide: Ray's JSON logger writes it in blocks.)"""
        workers = self.cluster.workers()
        for node in workers:
            for pid in node.processes():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        title = f.read().split(b"\0")[0]
                except OSError:
                    continue
                if title.startswith(b"ray::ImplicitFunc.train"):
                    return node, True
        return workers[0], False

    def _kill_node(self) -> None:
        victim, training = self._victim()
        fault = Fault("node", time.time(), victim.name, victim.ip, training=training)
        self.cluster.kill_raylet(victim)
        self.faults.append(fault)
        fault.kill_s = time.time() - fault.at
        fresh = self.cluster.add_worker(**victim.options)
        deadline = time.time() + 90  # add_worker may count the lost node, still alive to the GCS for ~3 s
        while time.time() < deadline and not any(n["ip"] == fresh.ip and n["alive"] for n in self.cluster.ray_nodes()):
            time.sleep(0.5)
        fault.restart_s = time.time() - fault.at - fault.kill_s
        fault.replacement = f"{fresh.name} ({fresh.ip})"
        self.say(fault.describe(self.start))

    def _kill_driver(self, driver: Driver) -> Driver:
        fault = Fault("driver", time.time())
        driver.process.send_signal(signal.SIGKILL)
        driver.process.wait(30)
        self.exits.append(driver.process.returncode)
        self.faults.append(fault)
        self.say(fault.describe(self.start))
        return self._driver("--resume")

    def memory_table(self) -> dict[str, tuple[float, float, float]]:
        """label -> (first, last, peak) resident MB: the first sample once the
        first trial had started (or once the node or driver was up, if
        later), the last once the last trial had started (or before the node
        or driver was killed), while every node still trains; the peak of all."""
        table = {}
        for label, samples in self.memory.items():
            during = [mb for t, mb in samples if self.first_trial_at <= t <= (self.last_trial_at or self.end)]
            during = during or [mb for _, mb in samples]
            table[label] = (during[0], during[-1], max(mb for _, mb in samples))
        return table


@dataclass
class Verdict:
    trials: int = 0
    lost: list[str] = field(default_factory=list)  # "trial_id: status"
    repeated: int = 0  # result.json lines of an epoch already there (run again after a restore)
    rerun_trials: int = 0
    retried: int = 0  # trials that failed (a lost node) and went on from a checkpoint
    missing: list[str] = field(default_factory=list)  # epochs the experiment lacks
    json_gaps: list[str] = field(default_factory=list)  # epochs result.json lacks, progress.csv has
    orphans: list[str] = field(default_factory=list)  # folders the resumed sweep does not continue
    best: dict = field(default_factory=dict)  # scope -> (trial_id, its value, the highest in the files)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _explained(before: dict, again: dict, faults: list[Fault]) -> bool:
    """Whether a fault that hit this trial lies between ``before`` (its last
    row before an epoch ran again) and ``again`` (the first row run again):
    the driver killed, or the node ``before`` ran on."""
    return any(before.get("timestamp", 0) - SLACK_S <= f.at <= again.get("timestamp", 0) + SLACK_S
               for f in faults if f.kind == "driver" or f.ip == before.get("node_ip"))


def _announced(said: list[str], name: str, words: str) -> bool:
    return any(name in text and words in text for text in said)


def _progress_rows(trial_dir: str) -> dict[int, dict]:
    with open(os.path.join(trial_dir, "progress.csv"), newline="") as f:
        return {int(r["training_iteration"]): {k: float(v) if k.endswith("accuracy") else v for k, v in r.items()}
                for r in csv.DictReader(f)}


def check_experiment(experiment: str, trials: int, faults: list[Fault] = ()) -> Verdict:
    """What must hold after a sweep of ``trials`` trials that met ``faults``:

    - the experiment holds ``trials`` trials, each ended: completed, or
      stopped by the scheduler at one of its rungs (errored or unfinished
      is lost);
    - no epoch is missing: each trial's epochs, as the experiment reads them
      (result.json, and progress.csv for a line result.json lacks), run 1 to
      its last, and a completed trial's to its planned epochs; an epoch
      result.json lacks is counted (``json_gaps``) and must be one that
      load_experiment says it took from progress.csv;
    - an epoch in result.json twice is a trial restored from a checkpoint
      older than its last result: only after a fault that hit the trial (its
      node killed, or the driver), and load_experiment counts it once;
    - a trial folder the experiment leaves out was started before the
      driver was killed (after Ray Tune's last save), as load_experiment says;
    - ``scenetune best``, by last epoch and by any epoch, gives the highest
      val_accuracy in the trials' files (each epoch's later run)."""
    verdict = Verdict()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exp = load_experiment(experiment)
    said = [str(w.message) for w in caught]
    table = exp.trials.set_index("trial_dir")
    verdict.trials = len(table)
    verdict.retried = int((table["failures"] > 0).sum()) if len(table) else 0
    if len(table) != trials:
        verdict.problems.append(f"the experiment holds {len(table)} trials, not {trials}")
    history = exp.epochs.groupby("trial_id")["training_iteration"].apply(sorted).to_dict() \
        if not exp.epochs.empty else {}
    rungs, finals = sorted(set(exp.rungs)), {}
    for trial in trial_dirs(experiment):
        name, rows = os.path.basename(trial), rows_of(trial)
        if name not in table.index:
            verdict.orphans.append(name)
            first = rows[0].get("timestamp", 0) if rows else 0
            if not any(f.kind == "driver" and first - SLACK_S <= f.at for f in faults):
                verdict.problems.append(f"{name}: left out of the experiment, with no driver kill after it started")
            if not _announced(said, name, "saved state"):
                verdict.problems.append(f"{name}: left out of the experiment without load_experiment saying so")
            continue
        row = table.loc[name]
        if row["status"] not in ENDED:
            error = row["error"] if isinstance(row["error"], str) else ""
            verdict.lost.append(f"{row['trial_id']}: {row['status']} {error}".strip())
        iterations = [r.get("training_iteration") for r in rows]
        if any(r.get("epoch") != r.get("training_iteration") for r in rows):
            verdict.problems.append(f"{name}: a row's epoch is not its training_iteration: {iterations}")
        final = {r["training_iteration"]: r for r in rows}  # each epoch's later run
        epochs = history.get(row["trial_id"], [])
        last = epochs[-1] if epochs else 0
        gaps = sorted(set(range(1, max(final, default=0) + 1)) - set(final))
        if gaps:
            verdict.json_gaps.append(f"{name}: {gaps}")
            if not _announced(said, name, "taken from progress.csv"):
                verdict.problems.append(f"{name}: epochs {gaps} not in result.json, and not taken from progress.csv")
            final.update({i: r for i, r in _progress_rows(trial).items() if i in gaps})
        finals[row["trial_id"]] = final
        if not epochs or epochs != list(range(1, last + 1)) or sorted(final) != epochs:
            verdict.missing.append(f"{name}: epochs {epochs}, result.json {iterations}")
        elif row["status"] == "completed" and last != row["planned_epochs"]:
            verdict.missing.append(f"{name}: completed at epoch {last} of {row['planned_epochs']}")
        elif row["status"] == "stopped" and last not in rungs:
            verdict.problems.append(f"{name}: stopped at epoch {last}, not at a rung {rungs}")
        if row["epochs"] != last:
            verdict.problems.append(f"{name}: the experiment counts {row['epochs']} epochs, its rows {last}")
        if len(rows) > len(set(iterations)):
            verdict.repeated += len(rows) - len(set(iterations))
            verdict.rerun_trials += 1
            if not _announced(said, name, "reported twice"):
                verdict.problems.append(f"{name}: epochs reported twice and load_experiment did not say so")
            for i in range(1, len(rows)):
                if iterations[i] <= max(iterations[:i]) and not _explained(rows[i - 1], rows[i], faults):
                    verdict.problems.append(
                        f"{name}: epoch {iterations[i]} ran again with no fault that hit it "
                        f"(epochs {iterations}, nodes {[r.get('node_ip') for r in rows]})")
                    break
    known = ("reported twice", "saved state", "taken from progress.csv")
    verdict.notes = [text for text in said if not any(words in text for words in known)]
    if verdict.lost:
        verdict.problems.append(f"{len(verdict.lost)} trials lost: {verdict.lost[:5]}")
    if verdict.missing:
        verdict.problems.append(f"{len(verdict.missing)} trials miss epochs: {verdict.missing[:5]}")
    if finals:
        check_best(experiment, exp.metric, finals, verdict)
    return verdict


def check_best(experiment: str, metric: str, finals: dict[str, dict[int, dict]], verdict: Verdict) -> None:
    """``scenetune best`` against the maximum over the trials' rows."""
    finals = {trial_id: rows for trial_id, rows in finals.items() if rows}
    expected = {"last": max(rows[max(rows)][metric] for rows in finals.values()),
                "all": max(r[metric] for rows in finals.values() for r in rows.values())}
    for scope, value in expected.items():
        run = subprocess.run([SCENETUNE, "best", experiment, "--scope", scope, "--format", "json"],
                             check=False, capture_output=True, text=True)
        if run.returncode != 0:
            verdict.problems.append(f"scenetune best --scope {scope} exited {run.returncode}: {run.stderr[-500:]}")
            continue
        (entry,) = json.loads(run.stdout)["best"]
        verdict.best[scope] = (entry["trial_id"], entry[metric], value)
        rows = finals.get(entry["trial_id"], {})
        own = (rows[max(rows)][metric] if scope == "last" else max(r[metric] for r in rows.values())) if rows \
            else None
        if not (math.isclose(entry[metric], value) and own is not None and math.isclose(own, value)):
            verdict.problems.append(f"scenetune best --scope {scope}: {entry['trial_id']} at {entry[metric]}, "
                                    f"but the highest {metric} in the trials' files is {value} (that trial's: {own})")
