"""Data: image sources, SimCLR view augmentation, and tf.data pipelines."""
