"""``scenetune sweep``'s Tuner returns without reading every trial's results
back (issue 24: the 10,000-trial driver, benchmarks/driver_scale.py).

Once its trials have ended, Ray Tune 2.60's ``Tuner.fit`` builds the
``ResultGrid`` it returns from an ``ExperimentAnalysis``, which reads every
trial's ``progress.csv``/``result.json`` from storage into a DataFrame of its
own (``_fetch_trial_dataframes``): at 10,000 trials, 10 s and 290 MB of the
driver's memory at the sweep's end. ``scenetune sweep`` drops that
ResultGrid (scenetune reads an experiment from its files:
``scenetune.analysis``), so :func:`no_trial_dataframes` leaves them unread
while it runs the Tuner: the grid's results have no ``metrics_dataframe``;
everything else in them is as Ray builds it.
"""

from __future__ import annotations

import contextlib

from scenetune.search.ray_compat import _ray_class, missing_in_ray

READ_ALL = "the end of every sweep reads all trials' results back into memory (290 MB at 10,000 trials)"


@contextlib.contextmanager
def no_trial_dataframes():
    """Ray's ExperimentAnalysis reads no trial's results while this runs (one
    warning line, and Ray's own reading, where this Ray lacks what it replaces)."""
    analysis = _ray_class("ray.tune.analysis.experiment_analysis", "ExperimentAnalysis", READ_ALL)
    original = getattr(analysis, "_fetch_trial_dataframes", None) if analysis is not None else None
    if analysis is not None and (original is None or "_fetch_trial_dataframes" not in
                                 getattr(getattr(analysis.__init__, "__code__", None), "co_names", ())):
        missing_in_ray(["ExperimentAnalysis._fetch_trial_dataframes"], READ_ALL)
        original = None
    if original is None:
        yield
        return
    analysis._fetch_trial_dataframes = lambda self: {}
    try:
        yield
    finally:
        analysis._fetch_trial_dataframes = original
