"""What Ray Tune 2.60's driver makes anew for every trial and keeps for the
whole sweep, though it is the same for all of them (issue 24: the
10,000-trial driver, benchmarks/driver_scale.py; by tracemalloc, about 3 KB
a trial of the 21 KB the driver still kept after the other fixes).

- **The placement group factory.** ``Trial.create_placement_group_factory``
  reads the trainable class from Ray's registry (an unpickling of the class
  each time) and keeps that copy's factory: a trial holds a factory of its
  own, with its bound ``placement_group`` signature, about 2 KB.
  :func:`share_placement_group_factories` gives every trial with equal
  resources one factory. Ray already treats equal factories as one: it keys
  its pending trials and its cache of warm processes by them.
- **A key a trial in Ray's ``log_once`` set.** Ray's JSON encoder of the
  experiment state falls back to cloudpickle for what JSON cannot hold (a
  trial's storage context and checkpoint manager, the moving averages'
  deques) and, to log that once at debug level, adds the object's text to
  the process's ``log_once`` set: a key per object, never removed, about 1
  KB a trial. :func:`one_key_for_encoder_fallbacks` logs the fallback once
  per process under one key.
"""

from __future__ import annotations

from scenetune.search.ray_compat import _ray_class, _wrap, missing_in_ray

ENCODER_KEY = "tune_func_encode"  # the prefix of the keys Ray's TuneFunctionEncoder logs its fallbacks under


def share_placement_group_factories() -> bool:
    """Install the sharing once per process; True when it is in place."""
    own = "every trial keeps a placement group factory of its own, about 2 KB"
    trial = _ray_class("ray.tune.experiment.trial", "Trial", own)
    factories: dict = {}  # a factory -> the first equal one (equal: the same resources and strategy)

    def shared(original):
        def create_placement_group_factory(self):
            original(self)
            factory = self.placement_group_factory
            self.placement_group_factory = factories.setdefault(factory, factory)
        return create_placement_group_factory

    return _wrap(trial, "create_placement_group_factory", shared, own)


def one_key_for_encoder_fallbacks() -> bool:
    """Swap the ``log_once`` that Ray's experiment-state encoder calls; True when in place."""
    import importlib

    grows = "the driver keeps a key a trial in Ray's log_once set, about 1 KB a trial"
    serialization = importlib.import_module("ray.tune.utils.serialization")
    log_once = getattr(serialization, "log_once", None)
    default = getattr(getattr(serialization, "TuneFunctionEncoder", None), "default", None)
    constants = default.__code__.co_consts if hasattr(default, "__code__") else ()  # the f-string's parts
    keyed = any(str(c).startswith(ENCODER_KEY + ":") for c in constants)
    missing = [name for name, there in (("log_once", log_once is not None),
                                        (f"TuneFunctionEncoder.default with {ENCODER_KEY}: keys", keyed)) if not there]
    if missing:
        return missing_in_ray([f"ray.tune.utils.serialization.{name}" for name in missing], grows)
    if getattr(log_once, "_scenetune", False):
        return True

    def one_key(key: str) -> bool:
        return log_once(ENCODER_KEY if key.startswith(ENCODER_KEY + ":") else key)

    one_key._scenetune = True
    serialization.log_once = one_key
    return True
