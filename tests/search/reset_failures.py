"""A full HyperBand band (max_t 9, factor 3: 17 trials) of a light trainable
with warm processes, in a Ray of its own, whose reused processes can never be
reset: ``TUNE_FUNCTION_THREAD_TIMEOUT_S=0`` gives a finished trial's thread no
time to end (tests/search/test_hyperband.py runs it in a subprocess).

    python -m tests.search.reset_failures OUT.json [--patched]

``--patched``: with scenetune's :func:`~scenetune.search.ray_compat.fresh_process_when_reuse_fails`
(and :func:`~scenetune.search.ray_compat.save_every_trial_status`, so that the
saved state says how each trial ended, and
:func:`~scenetune.search.ray_compat.keep_the_drivers_trial_logs`, as in a sweep).
Writes the trials' statuses, their reported epochs (progress.csv) and the epochs in
their result.json, and whether the sweep
ended before ``TIME_BUDGET_S`` (Ray Tune stops a sweep that waits longer).
"""

import csv
import json
import os
import sys
import time

# Ray alone waits out its budget (a hung band); the patched band finishes well within its own, which
# is large enough that a loaded machine (59 s once, with the whole suite and a benchmark alongside)
# cannot make a finished band look stopped
TIME_BUDGET_S = {False: 60, True: 180}


def main(out: str, patched: bool) -> None:
    os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] = "0"  # before Ray starts: its workers inherit it
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = "17"  # a band's worth, as a HyperBand sweep sets it
    import ray
    from ray import tune

    from scenetune.search.ray_compat import (
        fresh_process_when_reuse_fails,
        keep_the_drivers_trial_logs,
        save_every_trial_status,
    )
    from scenetune.search.schedulers import make_scheduler
    from tests.known_curves import LINES, checkpointed_lines

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    if patched:
        assert fresh_process_when_reuse_fails() and save_every_trial_status() and keep_the_drivers_trial_logs()
    chosen = make_scheduler({"name": "hyperband", "max_t": 9, "reduction_factor": 3,
                             "metric": "val_accuracy", "mode": "max"})
    names = sorted(LINES) * 3
    started = time.monotonic()
    tuner = tune.Tuner(checkpointed_lines, param_space={"curve": tune.grid_search(names[:17])},
                       tune_config=tune.TuneConfig(scheduler=chosen, reuse_actors=True,
                                                   time_budget_s=TIME_BUDGET_S[patched]),
                       run_config=tune.RunConfig(storage_path=os.path.dirname(os.path.abspath(out)), name="band",
                                                 verbose=0))
    grid = tuner.fit()
    seconds = time.monotonic() - started
    epochs, logged = {}, {}
    for result in grid:
        # progress.csv keeps every row; Ray alone's JSON logger copies a resumed trial's result.json back
        # from storage, which may not hold its last rows yet (keep_the_drivers_trial_logs keeps them)
        path = os.path.join(result.path, "progress.csv")
        rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
        epochs[os.path.basename(result.path)] = [int(row["epoch"]) for row in rows]
        path = os.path.join(result.path, "result.json")
        rows = [json.loads(line) for line in open(path) if line.strip()] if os.path.exists(path) else []
        logged[os.path.basename(result.path)] = [row["epoch"] for row in rows]
    state = sorted(f for f in os.listdir(os.path.dirname(grid[0].path)) if f.startswith("experiment_state-"))[-1]
    trial_data = json.load(open(os.path.join(os.path.dirname(grid[0].path), state)))["trial_data"]
    statuses = [json.loads(trial)["status"] for trial, _ in trial_data]
    with open(out, "w") as f:
        json.dump({"statuses": statuses, "epochs": epochs, "logged": logged, "seconds": seconds,
                   "errors": [str(e)[:300] for e in grid.errors]}, f)
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], "--patched" in sys.argv[2:])
