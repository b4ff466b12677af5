"""The data side of the trainables: datasets and their split manifest, the
data check, decoding, the decode cache, augmentation, the tf.data pipeline
and synthetic datasets. The driver uses the first ones without TensorFlow;
``pipeline`` and the in-model half of ``augment`` import it when called."""
