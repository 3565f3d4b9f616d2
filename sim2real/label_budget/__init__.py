"""The label-budget curve: real mIoU against the number of real labels, with and without synthetic data."""
