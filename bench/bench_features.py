"""Feature extraction vs the bare backbone forward on the same input; prints JSON.

`FeatureExtractor.extract` adds uint8 → float conversion, resize, ImageNet
normalisation and L2 normalisation around the backbone; this measures what
that costs at batch 1 (a live camera) and 32 (offline evaluation).
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch

from icub_guard.core.features import BackboneSpec, FeatureExtractor

from benchstats import median_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backbone", default="alexnet")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--crop-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    fx = FeatureExtractor(BackboneSpec(args.backbone, "random", 0, args.input_size), args.device)
    rng = np.random.default_rng(0)
    out = {"benchmark": "feature_extraction", "backbone": fx.spec.id, "device": str(fx.device),
           "torch_threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(), "results": []}
    for batch in (1, 32):
        crops = rng.integers(0, 256, (batch, args.crop_size, args.crop_size, 3), dtype=np.uint8)
        pre = fx.preprocess(torch.from_numpy(crops).to(fx.device, torch.float32))

        def bare(pre=pre):
            with torch.inference_mode():
                fx.trunk(pre)

        t_ours = median_seconds(lambda crops=crops, batch=batch: fx.extract(crops, batch_size=batch), args.reps)
        t_bare = median_seconds(bare, args.reps)
        out["results"].append({"batch": batch, "extract_ms": 1e3 * t_ours, "bare_forward_ms": 1e3 * t_bare,
                               "extract_images_per_s": batch / t_ours, "overhead_ratio": t_ours / t_bare})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
