"""Compression that learns inside the distillation: thin, careful wrappers over TF-MOT."""
