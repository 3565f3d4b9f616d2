"""The real target domain: importers (CamVid, Cityscapes-style, plain folders), validation,
the seeded few-shot subset, the embedded proxy domain, and `fetch` for public archives.

Example:
    >>> from sim2real.real.importers import load_split
    >>> val = load_split("../shared/data/camvid", "camvid", "val", height=96, width=128)
"""

from sim2real.real.importers import LabelledSet, available_splits, detect_format, load_split
from sim2real.real.validate import DatasetError

__all__ = ["LabelledSet", "load_split", "available_splits", "detect_format", "DatasetError"]
