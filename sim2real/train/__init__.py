"""Training: smp models and weight sources, the training loop, checkpoints, strategies, DDP, stages.

Modules: `models` (create_model, preprocess, encoder_features), `weights` (imagenet-offline),
`loop` (train), `checkpoint` (atomic save, weights-only load_model), `strategies` (fine-tuning),
`metrics` (fast selection mIoU), `ddp` (torchrun entry), `stage` (pretrained_model, finetuned_model,
real_only_model). Importing this package imports nothing heavy.
"""
