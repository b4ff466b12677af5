"""Search spaces as data: declarations (:mod:`scenetune.spaces.params`) and the one
converter to Ray Tune and Optuna (:mod:`scenetune.spaces.convert`). No TensorFlow."""

from scenetune.core.trees import flatten
from scenetune.spaces.convert import (deep_merge, get_path, optuna_distribution, set_path, to_optuna, to_tune,
                                      tune_domain, unflatten)
from scenetune.spaces.params import KINDS, Param, SpaceError, parse_space

__all__ = ["KINDS", "Param", "SpaceError", "parse_space", "to_tune", "to_optuna", "tune_domain",
           "optuna_distribution", "set_path", "get_path", "flatten", "unflatten", "deep_merge"]
