"""Data: image sources, view augmentation, and tf.data pipelines."""
