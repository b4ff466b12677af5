"""scenetune: distributed hyperparameter search for Keras scene classifiers
and GANs on Ray Tune, Optuna and ASHA.

The Python API (:mod:`scenetune.api`)::

    import scenetune
    exp = scenetune.sweep("sweeps/quickstart.yaml", name="nb")
    exp.best(top=3)
    exp.report()

Importing this package is cheap: the API's modules load on first use.
"""

from scenetune.core.errors import UserError

__version__ = "0.1.0"
__all__ = ["Experiment", "UserError", "load_experiment", "report", "sweep", "__version__"]

_API = ("Experiment", "load_experiment", "report", "sweep")


def __getattr__(name):
    if name in _API:
        from scenetune import api

        return getattr(api, name)
    raise AttributeError(f"module 'scenetune' has no attribute {name!r}")
