"""Weights the package ships: SimNet pre-trained by `icub-guard pretrain` (docs/pretraining.md)."""
