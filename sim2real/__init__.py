"""sim2real: synthetic road scenes to segmentation models that work on real cameras."""

__version__ = "0.1.0"
