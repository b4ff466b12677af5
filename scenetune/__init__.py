"""scenetune: distributed hyperparameter search for Keras scene classifiers
and GANs on Ray Tune, Optuna and ASHA."""

__version__ = "0.1.0"
