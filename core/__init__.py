"""The bottom layer: what every other layer of scenetune may import, and
which imports nothing of the project and nothing heavy (no TensorFlow,
pandas, Ray or Optuna at import time): storage by URI, the experiment's file
layout, the scheduler's rung schedule, the trainable registry and the
user-error type."""
