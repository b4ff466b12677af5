"""ASHA's rung cut-offs without reading every recorded result (issue 24:
the 10,000-trial driver, benchmarks/driver_scale.py).

Ray's ``_Bracket.cutoff`` takes, for each result that reaches a rung, the
percentile of every result recorded there (``np.nanpercentile`` of a list
made of the rung's dict): at 10,000 trials, with every trial recorded at the
first rung, ASHA's share of the driver grew from 0.8 to 4.8 ms a trial.
:class:`SortedRung` keeps each of a bracket's rungs as a sorted list, adds
the results recorded since the last call (a rung only gains results, in the
dict's insertion order), and computes the percentile as numpy's ``linear``
method does, operation for operation, so each cut-off is the same number.
A dict that is not one of the bracket's rungs (a held trial judged against
the others) goes to Ray's own.
"""

from __future__ import annotations

import bisect
import itertools
import math


def numpy_linear_percentile(values: list[float], q: float) -> float:
    """``np.nanpercentile(values, 100 * q)`` of sorted non-NaN ``values``, with
    numpy 2's arithmetic (the ``linear`` method's index, ``_get_indexes``, ``_lerp``)."""
    n = len(values)
    if n == 0:
        return math.nan
    virtual = (n - 1) * q  # numpy's _QuantileMethods['linear']
    if virtual >= n - 1:
        return values[-1]
    if virtual < 0:
        return values[0]
    below = math.floor(virtual)
    gamma = virtual - below
    a, b = values[below], values[below + 1]
    diff = b - a
    return b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma


class SortedRung:
    """A bracket's ``cutoff`` (module doc): Ray's number, from sorted rungs."""

    def __init__(self, bracket):
        self.bracket = bracket
        self.q = (1 - 1 / bracket.rf) * 100 / 100  # as Ray passes it and numpy divides it
        self.rungs: dict[int, list] = {}  # id(a rung's dict) -> [the dict, its sorted values, how many read]

    def __call__(self, recorded: dict):
        if not recorded:
            return None
        if not any(rung is recorded for _, rung in self.bracket._rungs):
            return self.ray_s(recorded)
        entry = self.rungs.get(id(recorded))
        if entry is None or entry[0] is not recorded or entry[2] > len(recorded):
            entry = self.rungs[id(recorded)] = [recorded, [], 0]  # the dict, its sorted values, how many read
        _, values, read = entry
        try:
            new = [float(v) for v in itertools.islice(reversed(recorded.values()), len(recorded) - read)]
        except (TypeError, ValueError):  # not a number: numpy judges it
            return self.ray_s(recorded)
        for value in new:
            if not math.isnan(value):
                bisect.insort(values, value)
        entry[2] = len(recorded)
        return numpy_linear_percentile(values, self.q)

    def ray_s(self, recorded: dict):
        return type(self.bracket).cutoff(self.bracket, recorded)  # the class's: the instance's is this


def sort_rungs(scheduler) -> None:
    """Give each bracket of Ray's ``AsyncHyperBandScheduler`` its :class:`SortedRung`."""
    for bracket in scheduler._brackets:
        bracket.cutoff = SortedRung(bracket)
