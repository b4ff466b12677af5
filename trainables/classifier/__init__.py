"""The scene classifier trainable: its config, backbones, models, Grad-CAM
and the training loop (:mod:`.train`, the only module here that imports
TensorFlow at import time)."""
