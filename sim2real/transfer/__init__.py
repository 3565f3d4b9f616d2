"""Layer-wise transferability: fine-tune with encoder stages 1..k frozen, from synthetic and ImageNet inits.

Stages `transfer_ablation` (one run per (k, seed)) and `transfer_curve` (real-val mIoU against k).
"""
