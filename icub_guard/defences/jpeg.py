"""JPEG re-encoding of the crop (Günther et al.; Guo et al. 2018). Not differentiable: an adaptive attacker
differentiates it as the identity (BPDA, straight-through), which is what `__call__` gives autograd."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .base import InputTransform, check_range


class _StraightThrough(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, quality: int) -> torch.Tensor:
        arr = x.detach().round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        out = np.empty_like(arr)
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        for i, im in enumerate(arr):  # one encode per crop (OpenCV has no batched JPEG)
            ok, buf = cv2.imencode(".jpg", im[:, :, ::-1], params)
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            out[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        return torch.from_numpy(out).to(x.device, x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


class Jpeg(InputTransform):
    name = "jpeg"
    differentiable = False

    def __init__(self, quality: int = 75, seed: int = 0):
        super().__init__(seed)
        self.quality = check_range("quality", quality, 1, 100, integer=True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(x, self.quality)
