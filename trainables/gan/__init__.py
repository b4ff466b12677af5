"""The DCGAN trainable: its config, models, metrics (FID, KID, diversity),
features, samples, checkpoints and the training loop (:mod:`.train`)."""
