"""The driver: sweep specs, Ray Tune with Optuna and the schedulers, and
replays of recorded sweeps. Imports no TensorFlow."""
