"""What a run leaves behind: files written atomically (`atomic`), exported models for TF
Serving, ONNX and LiteRT (`export`), plots (`plots`) and TensorBoard scalars
(`tensorboard_logs`). Importing this package imports nothing."""
