"""Where a sweep's time goes, measured by the driver: its own set-up (data
check, split), the Ray start, and for each trial its wall time against the
fit time it reported. Written to the experiment as ``sweep_timings.json`` and
summed up in one line at the end of the sweep.

Two views of the per-trial overhead (time that is not training):
- ``overhead_s``: a trial's wall time, from Ray starting it (a new worker
  process once up, or a reused one once reset) to its last result, minus its
  reported fit time (``train_time_s``). It does not see a new process's spawn;
- ``slot_overhead_s``: the trial phase's wall time times the slots it used
  (the most trials seen running at once), minus all fit time, per trial: what
  a user waits for, spawn, imports and idle slots included.
"""

from __future__ import annotations

import contextlib
import json
import time

from ray.tune import Callback

from scenetune.core import storage
from scenetune.core.layout import TIMINGS_FILE


class SweepClock(Callback):
    def __init__(self):
        self.phases: dict[str, float] = {}
        self.trials: dict[str, dict] = {}
        self.running: set[str] = set()
        self.slots = 0
        self.started = time.time()

    @contextlib.contextmanager
    def phase(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = round(time.perf_counter() - started, 3)

    def _trial(self, trial) -> dict:
        return self.trials.setdefault(trial.trial_id, {"starts": [], "end": None, "fit_s": 0.0, "results": []})

    def on_trial_start(self, iteration, trials, trial, **info):
        self._trial(trial)["starts"].append(round(time.time() - self.started, 3))
        self.running.add(trial.trial_id)
        self.slots = max(self.slots, len(self.running))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        entry = self._trial(trial)
        entry["results"].append([result.get("training_iteration"), round(time.time() - self.started, 3)])
        entry["fit_s"] = float(result.get("train_time_s", entry["fit_s"]) or 0.0)

    def _ended(self, trial) -> None:
        self._trial(trial)["end"] = round(time.time() - self.started, 3)
        self.running.discard(trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.running.discard(trial.trial_id)  # it starts again (on_trial_start) from its checkpoint

    def per_trial(self) -> list[dict]:
        """Finished trials: wall time (first start to end), fit time, overhead."""
        rows = []
        for trial_id, entry in self.trials.items():
            if entry["starts"] and entry["end"] is not None:
                wall = entry["end"] - entry["starts"][0]
                rows.append({"trial_id": trial_id, "wall_s": wall, "fit_s": entry["fit_s"],
                             "overhead_s": wall - entry["fit_s"]})
        return rows

    def to_dict(self) -> dict:
        rows = self.per_trial()
        # started_at: when this run's clock started (seconds since the epoch);
        # every time in ``trials`` counts from it.
        out = {**self.phases, "started_at": round(self.started, 3), "slots": self.slots, "trials": self.trials}
        if rows:
            out["overhead_s"] = sum(r["overhead_s"] for r in rows) / len(rows)
            if "trials_s" in self.phases and self.slots:
                fit = sum(r["fit_s"] for r in rows)
                out["slot_overhead_s"] = (self.phases["trials_s"] * self.slots - fit) / len(rows)
        return out

    def save(self, experiment: str) -> None:
        """Write (a resumed sweep: append) this run's timings."""
        uri = storage.join(experiment, TIMINGS_FILE)
        runs = json.loads(storage.read_text(uri))["runs"] if storage.exists(uri) else []
        storage.write_text(uri, json.dumps({"runs": [*runs, self.to_dict()]}, indent=1))

    def summary(self) -> str:
        d = self.to_dict()
        parts = [f"{label} {d[key]:.1f} s" for key, label in
                 (("prepare_s", "data check and split"), ("ray_start_s", "Ray start"), ("trials_s", "trials"))
                 if key in d]
        line = "time: " + ", ".join(parts)
        rows = self.per_trial()
        if rows:
            line += (f"; per trial (mean of {len(rows)}): wall {sum(r['wall_s'] for r in rows) / len(rows):.1f} s, "
                     f"fit {sum(r['fit_s'] for r in rows) / len(rows):.1f} s, "
                     f"start-up and reporting {d['overhead_s']:.1f} s")
        return line
