"""Everything that runs inside a trial, in three parts: :mod:`.data` (the
datasets, the data check, decoding, the cache, augmentation and the input
pipeline: the driver uses its light modules without TensorFlow),
:mod:`.classifier` and :mod:`.gan` (each trainable's config, models and
training loop), and what both trainables share: :mod:`.reporting` (the one
Tune report-and-checkpoint step), :mod:`.device`, :mod:`.faults` and
:mod:`.warmup`. Never imports :mod:`scenetune.search` or
:mod:`scenetune.analysis`.

The trainables are named in :mod:`scenetune.core.registry`.
"""
