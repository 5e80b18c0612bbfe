"""Pre-train SimNet on the shape renders: seeded, resumable, batched; writes a plain state dict.

The data set is rendered once into a cached uint8 array (`data-<key>.npz`, no pickle), so an epoch
costs only the network. Every epoch ends with a checkpoint (`checkpoint.pt`: weights, optimiser,
epoch, the configuration and the history, all loadable with `weights_only=True`); a second run with
the same configuration resumes after the last finished epoch and gives the same weights as an
uninterrupted one, since each epoch's shuffle, augmentation and dropout draw from (seed, epoch).

Objective: cross-entropy over the shape classes plus `colour_weight` × cross-entropy over the
palette colour of the shape's first part, on augmented crops (scale, shift, flip, brightness,
contrast, blur by down-and-up sampling as a small ROI gives).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..core.errors import InputError
from ..core.features import IMAGENET_MEAN, IMAGENET_STD
from ..core.smallnet import FEATURE_DIM, WIDTHS, SimNetTrainer
from .shapes import PALETTE, POSES, render_dataset

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump when shapes.py draws different pixels for the same arguments


@dataclass(frozen=True)
class PretrainConfig:
    n_classes: int = 100
    per_class: int = 100
    val_per_class: int = 10
    crop_size: int = 64
    epochs: int = 40
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    colour_weight: float = 0.5
    label_smoothing: float = 0.1
    widths: tuple[int, ...] = WIDTHS
    dim: int = FEATURE_DIM
    seed: int = 0
    pose: str = "upright"  # shapes.POSES: "free" is the first shipped checkpoint's renders
    noise: float = 0.0  # sensor noise: each crop gets Gaussian pixel noise of σ ~ U(0, noise) (0..1 pixel scale)

    def __post_init__(self) -> None:
        for name in ("n_classes", "per_class", "crop_size", "epochs", "batch_size", "dim"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be positive")
        if self.n_classes < 2:
            raise InputError("n_classes must be at least 2")
        if self.crop_size < 32:
            raise InputError("crop_size must be at least 32 pixels")
        if not 0.0 <= self.noise <= 0.5:
            raise InputError(f"noise must be a pixel σ in [0, 0.5], not {self.noise}")
        if self.pose not in POSES:
            raise InputError(f"pose must be one of {', '.join(POSES)}, not {self.pose!r}")

    def data_key(self) -> str:
        spec = [GENERATOR_VERSION, self.n_classes, self.per_class, self.val_per_class, self.crop_size, self.seed]
        if self.pose != "free":  # "free" keeps the key its renders had before poses were a choice
            spec.append(self.pose)
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:16]


@dataclass
class PretrainResult:
    out: Path | None  # None: stopped before the last epoch (`stop_after`); run again to resume
    file_sha256: str
    epochs_run: int
    history: list[dict] = field(default_factory=list)


def load_or_render(cfg: PretrainConfig, workdir: Path, progress: bool = True) -> dict[str, np.ndarray]:
    """The train and validation renders, from `workdir`'s cache when it holds this configuration's."""
    path = workdir / f"data-{cfg.data_key()}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
            if data["x_train"].shape[0] == cfg.n_classes * cfg.per_class:
                return data
        except (OSError, ValueError, KeyError) as exc:
            log.warning("render cache %s unreadable (%s); rendering again", path, exc)
    xt, st, ct = render_dataset(cfg.n_classes, cfg.per_class, cfg.crop_size, seed=cfg.seed, progress=progress,
                                pose=cfg.pose)
    data = {"x_train": xt, "s_train": st, "c_train": ct}
    if cfg.val_per_class:
        xv, sv, cv = render_dataset(cfg.n_classes, cfg.val_per_class, cfg.crop_size, seed=cfg.seed,
                                    first=cfg.per_class, progress=progress, pose=cfg.pose)
        data |= {"x_val": xv, "s_val": sv, "c_val": cv}
    workdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(path)
    return data


def normalise(x: torch.Tensor) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W ImageNet-normalised float, as `FeatureExtractor.preprocess` feeds the trunk."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator, noise: float = 0.0) -> torch.Tensor:
    """Batched augmentation of N×H×W×3 uint8 crops → normalised N×3×H×W (one affine warp, no per-image loop).
    `noise` > 0 adds a camera's pixel noise (σ drawn per crop from U(0, noise)); its draws come after every other,
    so that noise 0 draws exactly what the checkpoints trained before it drew."""
    n, s = x.shape[0], x.shape[1]
    img = x.permute(0, 3, 1, 2).float() / 255.0

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=gen)

    scale = u(0.8, 1.1)
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = u(-0.12, 0.12, 2)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    small = torch.rand(n, generator=gen) < 0.3  # a far object: few pixels, upsampled
    if small.any():
        low = F.interpolate(img[small], size=(s // 2, s // 2), mode="bilinear", antialias=True, align_corners=False)
        img[small] = F.interpolate(low, size=(s, s), mode="bilinear", align_corners=False)
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    img = (img - mean) * u(0.7, 1.3, 1, 1, 1) + mean * u(0.7, 1.3, 1, 1, 1)
    if noise > 0:
        img = img + u(0.0, noise, 1, 1, 1) * torch.randn(img.shape, generator=gen)
    img = img.clamp(0, 1)
    m = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    sd = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (img - m) / sd


def _lr(cfg: PretrainConfig, step: int, total: int) -> float:
    """Linear warm-up over the first 3% of steps, then cosine to zero."""
    warm = max(1, total // 33)
    if step < warm:
        return cfg.lr * (step + 1) / warm
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _accuracy(model: SimNetTrainer, x: np.ndarray, s: np.ndarray, batch: int = 256) -> float:
    model.eval()
    hits = 0
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            logits, _ = model(normalise(torch.from_numpy(x[i:i + batch])))
            hits += int((logits.argmax(1).numpy() == s[i:i + batch]).sum())
    return hits / max(1, len(x))


def pretrain(cfg: PretrainConfig, out: Path, workdir: Path, progress: bool = True,
             stop_after: int | None = None) -> PretrainResult:
    """Train (or resume) and write the trunk's state dict to `out` after the last epoch.

    `stop_after`: run at most this many epochs now (a machine shared in time slices); the next call resumes.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data = load_or_render(cfg, workdir, progress)
    x, s, c = data["x_train"], data["s_train"], data["c_train"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = SimNetTrainer(cfg.n_classes, len(PALETTE), cfg.widths, cfg.dim)
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on a CPU; the values are the same
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path = workdir / "checkpoint.pt"
    start, history = 0, []
    config = json.dumps(asdict(cfg), sort_keys=True)
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt.get("config") != config:
            raise InputError(f"{ckpt_path} was written by another configuration; use another --workdir or delete it")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start, history = int(ckpt["epoch"]), json.loads(ckpt["history"])
        log.info("resuming after epoch %d of %d", start, cfg.epochs)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    xt, st, ct = torch.from_numpy(x), torch.from_numpy(s), torch.from_numpy(c)
    stop = cfg.epochs if stop_after is None else min(cfg.epochs, start + stop_after)
    for epoch in range(start, stop):
        model.train()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # dropout
        order = torch.randperm(len(x), generator=gen)
        run_loss, seen = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not progress)
        for b in bar:
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = _lr(cfg, epoch * steps_per_epoch + b, total)
            batch = augment(xt[idx], gen, cfg.noise).contiguous(memory_format=torch.channels_last)
            shape_logits, colour_logits = model(batch)
            loss = (F.cross_entropy(shape_logits, st[idx], label_smoothing=cfg.label_smoothing)
                    + cfg.colour_weight * F.cross_entropy(colour_logits, ct[idx], label_smoothing=cfg.label_smoothing))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{run_loss / seen:.3f}")
        row = {"epoch": epoch + 1, "loss": run_loss / seen}
        if "x_val" in data:
            row["val_shape_accuracy"] = _accuracy(model, data["x_val"], data["s_val"])
        history.append(row)
        log.info("epoch %d: %s", epoch + 1, row)
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch + 1,
                    "config": config, "history": json.dumps(history)}, tmp)
        tmp.replace(ckpt_path)
    if stop < cfg.epochs:
        return PretrainResult(None, "", stop - start, history)
    out.parent.mkdir(parents=True, exist_ok=True)
    trunk = {k: v.detach().contiguous().clone() for k, v in model.trunk.state_dict().items()}
    tmp = out.with_name(out.name + ".tmp")
    torch.save(trunk, tmp)
    tmp.replace(out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return PretrainResult(out, digest, stop - start, history)
