"""ASHA's choice of the next trial (search/schedulers.py) walks neither
the ended trials at the list's head nor the ended trials when it looks for a
held one to resume: a walk of every trial on every event cost 30 ms a trial
at 10,000 trials (benchmarks/driver_scale.py). Ray Tune's own Trial objects."""

from ray import tune
from ray.tune.experiment import Trial

from scenetune.search.tuner import scheduler
from tests.known_curves import EPOCHS, checkpointed_lines
from tests.search.test_rung_holds import spec_with


def trial(n: int) -> Trial:
    tune.register_trainable("checkpointed_lines", checkpointed_lines)
    return Trial("checkpointed_lines", config={"n": n})


class TrialList:
    """What ASHA reads of Ray's TuneController: its list of trials, in order, and the live ones."""

    def __init__(self, trials):
        self.trials = trials

    def get_trials(self):
        return self.trials

    def get_live_trials(self):
        return {t for t in self.trials if t.status != "TERMINATED"}


def test_the_next_trial_is_the_first_pending_one_as_the_ended_trials_pile_up(tmp_path):
    """Ray's order (the first pending trial of the list), from the first trial
    that has not ended on: ended trials at the head are skipped once, a trial
    Ray moved to the end to retry it is found there, and a restored sweep's
    new list is walked from its start."""
    asha = scheduler(spec_with(tmp_path, {"name": "asha", "max_t": EPOCHS}))
    trials = [trial(n) for n in range(6)]
    controller = TrialList(trials)
    for t, status in zip(trials, ["TERMINATED", "TERMINATED", "RUNNING", "TERMINATED", "PENDING", "PENDING"]):
        t.set_status(status)
    assert asha.choose_trial_to_run(controller) is trials[4]
    trials[2].set_status("TERMINATED")
    trials[4].set_status("RUNNING")
    assert asha.choose_trial_to_run(controller) is trials[5]
    assert asha._ended_prefix == 4  # the four ended trials at the head are not walked again
    trials[5].set_status("RUNNING")
    trials.append(trials.pop(4))  # Ray retries a failed trial from the end of the list
    trials[-1].set_status("PENDING")
    assert asha.choose_trial_to_run(controller) is trials[-1]
    restored = TrialList([trial(n) for n in range(2)])
    assert asha.choose_trial_to_run(restored) is restored.trials[0]  # PENDING, as Ray makes a trial


def test_a_promoted_held_trial_is_resumed_before_any_pending_one(tmp_path):
    asha = scheduler(spec_with(tmp_path, {"name": "asha", "max_t": EPOCHS}))
    trials = [trial(n) for n in range(4)]
    for t, status in zip(trials, ["TERMINATED", "PENDING", "PAUSED", "PAUSED"]):
        t.set_status(status)
    asha.promoted = {trials[3].trial_id}
    assert asha.choose_trial_to_run(TrialList(trials)) is trials[3]
    asha.promoted = {trials[2].trial_id, trials[3].trial_id}
    assert asha.choose_trial_to_run(TrialList(trials)) is trials[2]  # the first in Ray's order
    asha.promoted = set()
    asha.held = {trials[2].trial_id: 1.0}  # held, not promoted: waits; the pending one runs
    assert asha.choose_trial_to_run(TrialList(trials)) is trials[1]
