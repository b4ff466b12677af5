"""What the user's commands do after a sweep: evaluate the best trial,
predict with a saved model, generate images with a GAN, export a study.
The only layer, with the CLI and the public API, that imports both the
trainables and :mod:`scenetune.analysis`."""
