"""An ended trial's saved state kept compressed in the driver (issue 24: the
10,000-trial driver, benchmarks/driver_scale.py).

For each trial, Ray Tune 2.60 caches the JSON that its experiment-state
snapshot writes: ``Trial.get_json_state`` returns the trial's state and its
run metadata, each ``json.dumps(indent=2)`` with hex-pickled parts (storage
context, placement group factory, checkpoint manager), about 12 KB a trial,
kept for the whole sweep in the trial and in ``TuneController._trial_metadata``
(tracemalloc: a third of what the driver keeps a trial). A trial that has
ended changes no more, so :func:`pack_ended_trial_state` keeps its pair
zlib-compressed (about 4 KB) as a :class:`PackedJson`, which hands back the
strings when iterated: the experiment-state snapshot (``json.dump``, which
writes a tuple by iterating it) writes the same file as before, unpacking
one trial at a time, and a trial whose state changes again (a retry, a
resume) is serialised afresh, as Ray does.
"""

from __future__ import annotations

import zlib

from scenetune.search.finished_trials import ENDED
from scenetune.search.ray_compat import _ray_class, _wrap, missing_in_ray


class PackedJson(tuple):
    """A trial's (state JSON, run metadata JSON), compressed; iterating gives the strings.

    A copy or a pickle of one is a PackedJson too (a copied trial's run
    metadata holds one: the wrapper below serialises that trial afresh)."""

    def __new__(cls, pair):
        return super().__new__(cls, (zlib.compress(text.encode()) for text in pair))

    def __iter__(self):
        for item in tuple.__iter__(self):
            yield zlib.decompress(item).decode()

    def __getnewargs__(self):
        return (tuple(self),)


def pack_ended_trial_state() -> bool:
    """Install the packing once per process; True when it is in place."""
    unpacked = "the driver keeps every ended trial's saved state as uncompressed JSON, about 12 KB a trial"
    trial = _ray_class("ray.tune.experiment.trial", "Trial", unpacked)
    metadata = _ray_class("ray.tune.trainable.metadata", "_TrainingRunMetadata", unpacked)
    if trial is None or metadata is None:
        return False
    missing = [f"{owner.__name__}.{name}" for owner, name in ((trial, "_state_json"), (metadata, "_cached_json"))
               if name not in getattr(getattr(owner.__init__, "__code__", None), "co_names", ())]
    if missing:  # the caches the wrapper reads and replaces, both set in __init__
        return missing_in_ray(missing, unpacked)

    def packed_when_ended(original):
        def get_json_state(self):
            # Both caches hold the same PackedJson until Ray invalidates either (sets it to None).
            packed = self.__dict__.get("_state_json")
            metadata = self.run_metadata
            if isinstance(packed, PackedJson):
                if metadata.__dict__.get("_cached_json") is packed:
                    return packed
                self._state_json = None
            if isinstance(metadata.__dict__.get("_cached_json"), PackedJson):
                metadata._cached_json = None  # (setting it invalidates nothing else)
            pair = original(self)
            if self.status not in ENDED:
                return pair
            packed = PackedJson(pair)
            self._state_json = metadata._cached_json = packed
            return packed
        return get_json_state

    return _wrap(trial, "get_json_state", packed_when_ended, unpacked)
