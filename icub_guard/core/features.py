"""Deep features from torchvision backbones, as a differentiable module of pixels.

`FeatureExtractor` maps crops (N×H×W×3, float 0..255, the attacker's space) to
L2-normalised fc7-style features. The L2 step matters twice: random-init weights
give features of magnitude ~1e-3, and a fixed scale makes the classifiers' C and
γ grids mean the same thing for every backbone.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from .errors import InputError, WeightsUnavailableError
from .smallnet import FEATURE_DIM, INPUT_SIZE, simnet_trunk

log = logging.getLogger(__name__)

BACKBONES = {"alexnet": 4096, "vgg16": 4096, "resnet18": 512, "resnet50": 2048, "simnet": FEATURE_DIM}
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
#: SimNet's shipped checkpoints (`icub-guard pretrain`; docs/pretraining.md has the command that made each), by the
#: name `weights` takes → (file in MODELS_DIR, its SHA-256: a damaged or replaced file is refused, not loaded).
#: `simworld` is the first (free 3-D poses; every stored SimNet report before `simworld2` used it), kept so that
#: those reports still reproduce; `simworld2` was trained on upright poses and is what `weights: auto` gives SimNet.
SHIPPED_WEIGHTS = {
    "simworld": ("simworld_backbone.pt", "32ff62b6ca8d071b2dd5b6f9af90d22da41aae563f46c34f2afd27ba8e7dcee9"),
    "simworld2": ("simworld2_backbone.pt", "f6fc66496a715d22bd700cb7f6d22b4dc642a5d1c1a4e50023266d35ee71c4d9"),
}
SIMNET_AUTO = "simworld2"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available")
    return dev


def default_input_size(name: str) -> int:
    """The input size a backbone was trained at: 64 px for SimNet, 224 px for the ImageNet networks."""
    return INPUT_SIZE if name == "simnet" else 224


def _trunk(name: str, model: torch.nn.Module) -> torch.nn.Module:
    """The network up to fc7 (AlexNet/VGG) or the pooled penultimate layer (ResNet); SimNet is its trunk."""
    if name == "simnet":
        return model
    if name == "alexnet":
        return torch.nn.Sequential(model.features, model.avgpool, torch.nn.Flatten(1), *model.classifier[:6])
    if name == "vgg16":
        return torch.nn.Sequential(model.features, model.avgpool, torch.nn.Flatten(1), *model.classifier[:5])
    model.fc = torch.nn.Identity()
    return model


def _architecture(name: str) -> torch.nn.Module:
    return simnet_trunk() if name == "simnet" else torchvision.models.get_model(name, weights=None)


def load_backbone(name: str, weights: str = "imagenet", seed: int = 0) -> torch.nn.Module:
    """Build a model with `weights`: imagenet, a `SHIPPED_WEIGHTS` name (SimNet's), random (seeded) or a file path."""
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return _architecture(name)
    if weights in SHIPPED_WEIGHTS:
        if name != "simnet":
            raise InputError(f"weights {weights} are SimNet's; backbone {name!r} has none (use backbone simnet)")
        return _load_shipped(weights)
    if name == "simnet" and weights == "imagenet":
        raise WeightsUnavailableError(f"SimNet has no ImageNet weights: use weights {' or '.join(SHIPPED_WEIGHTS)}, "
                                      "random or a checkpoint")
    if weights == "imagenet":
        enum = torchvision.models.get_model_weights(name).DEFAULT
        cache = imagenet_cache(name)
        try:
            return torchvision.models.get_model(name, weights=enum)
        except Exception as exc:  # offline, proxy, truncated download...
            raise WeightsUnavailableError(
                f"ImageNet weights for {name} are not cached ({cache}) and could not be downloaded "
                f"({type(exc).__name__}: {exc}). Copy {Path(enum.url).name} into {cache.parent}, or pass "
                f"weights=/path/to/checkpoint.pth (a torchvision state_dict), or weights=random for tests."
            ) from exc
    path = Path(weights)
    if not path.is_file():
        raise WeightsUnavailableError(
            f"weights must be 'imagenet', 'random', {', '.join(map(repr, SHIPPED_WEIGHTS))} (SimNet's) or an existing "
            f"checkpoint file; {weights!r} is none of these")
    model = _architecture(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    except Exception as exc:
        raise WeightsUnavailableError(f"cannot load {name} weights from {path}: {exc}") from exc
    return model


def _load_shipped(weights: str) -> torch.nn.Module:
    """SimNet with shipped weights, after checking the file's SHA-256 (a damaged file is refused)."""
    file, sha256 = SHIPPED_WEIGHTS[weights]
    path = MODELS_DIR / file
    if not path.is_file():
        raise WeightsUnavailableError(f"SimNet's shipped weights are missing ({path}); reinstall the package or "
                                      "make them with `icub-guard pretrain` (docs/models.md) and pass the file")
    blob = path.read_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    if digest != sha256:
        raise WeightsUnavailableError(f"{path} has SHA-256 {digest}, not the recorded {sha256}: "
                                      "damaged or replaced; refusing it (pass it as a checkpoint path to use it)")
    model = simnet_trunk()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model


def weights_sha256(module: torch.nn.Module) -> str:
    """Hash of every parameter and buffer: a saved classifier only fits these features."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class BackboneSpec:
    name: str = "alexnet"
    weights: str = "imagenet"
    seed: int = 0
    input_size: int = 224

    def __post_init__(self) -> None:
        if self.weights in SHIPPED_WEIGHTS:  # the shipped weights exist for one architecture: naming them picks it
            object.__setattr__(self, "name", "simnet")

    @property
    def id(self) -> str:
        w = f"random(seed={self.seed})" if self.weights == "random" else self.weights
        return f"{self.name}:{w}@{self.input_size}"


class FeatureExtractor(torch.nn.Module):
    """pixels (N×H×W×3, 0..255) → L2-normalised deep features (N×D), differentiable."""

    def __init__(self, spec: BackboneSpec = BackboneSpec(), device: str = "auto"):
        super().__init__()
        if spec.input_size < 32:
            raise InputError("input_size must be at least 32 pixels")
        self.spec = spec
        self.trunk = _trunk(spec.name, load_backbone(spec.name, spec.weights, spec.seed)).eval()
        self.trunk.requires_grad_(False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.dim = BACKBONES[spec.name]
        self.to(resolve_device(device))
        self._sha: str | None = None
        self._lowp: dict = {}  # (dtype, device) → a frozen copy of the trunk in that dtype (not a submodule)
        if spec.weights == "random":
            log.warning("backbone %s uses random weights: fine for tests, not for a robot", spec.id)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def weights_sha256(self) -> str:
        if self._sha is None:
            self._sha = weights_sha256(self.trunk)
        return self._sha

    def train(self, mode: bool = True) -> FeatureExtractor:
        # The backbone is frozen: dropout/batch-norm stay in inference mode always.
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """N×H×W×3 0..255 → N×3×S×S ImageNet-normalised (bilinear resize)."""
        # one affine op before the resize (bilinear weights sum to 1, so the two commute), on the smaller image
        x = torch.addcmul(-self.mean / self.std, x.permute(0, 3, 1, 2), 1.0 / (255.0 * self.std))
        s = self.spec.input_size
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self._trunk_for(x.device.type)(self.preprocess(x))
        return F.normalize(f, dim=1, eps=1e-12)

    def _trunk_for(self, device_type: str) -> torch.nn.Module:
        """The trunk, or under a low-precision autocast its copy already in that dtype.

        Autocast caches weight casts only for weights that require grad; the frozen trunk's would be
        cast again at every forward (a third of an attack step on CPU). The copy gives the same numbers.
        """
        if not torch.is_autocast_enabled(device_type):
            return self.trunk
        dtype = torch.get_autocast_dtype(device_type)
        if dtype not in (torch.bfloat16, torch.float16):
            return self.trunk
        key = (dtype, self.device)
        if key not in self._lowp:
            self._lowp = {key: copy.deepcopy(self.trunk).to(dtype)}
        return self._lowp[key]

    def extract(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Features of uint8 crops (N×H×W×3 or one H×W×3), batched, as float32."""
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3 or 0 in arr.shape:
            raise InputError(f"images must be N×H×W×3, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise InputError(f"images must be uint8 0..255, got {arr.dtype}")
        out = np.empty((len(arr), self.dim), np.float32)
        with torch.inference_mode():
            for i in range(0, len(arr), batch_size):
                batch = torch.from_numpy(arr[i : i + batch_size]).to(self.device, torch.float32)
                out[i : i + batch_size] = self(batch).cpu().numpy()
        return out


def build_extractor(name: str = "alexnet", weights: str = "auto", seed: int = 0, input_size: int = 224,
                    device: str = "auto") -> tuple[FeatureExtractor, str | None]:
    """The extractor, and why it is degraded (or None).

    `weights="auto"` means ImageNet weights when they are in torch.hub's cache,
    else seeded random weights — decided without a network attempt; the robot
    keeps working, and says so (once, in the log, and in /diagnostics). The returned note says
    where the weights were looked for: the log may not reach the user (a ROS launch, a test's capture).
    """
    why = ""
    if weights == "auto" and (name == "simnet"):
        want = SIMNET_AUTO  # SimNet has no ImageNet weights; its own are always there
    elif weights == "auto":
        cache = imagenet_cache(name)
        if cache.is_file():
            want = "imagenet"
            log.info("weights auto: ImageNet weights for %s found in %s", name, cache)
        else:  # no network attempt: a robot may be offline, and a failed download costs seconds
            want = "random"
            why = f" (weights auto: no ImageNet weights for {name} in {cache.parent})"
            log.warning("weights auto: no ImageNet weights for %s in %s -> seeded RANDOM weights (fine for tests, "
                        "not for a robot; copy %s there or pass weights=imagenet to download)", name, cache.parent,
                        cache.name)
    else:
        want = weights
    fx = FeatureExtractor(BackboneSpec(name, want, seed, input_size), device)
    return fx, (f"random backbone weights{why}" if fx.spec.weights == "random" else None)


def imagenet_cache(name: str) -> Path:
    """Where torchvision keeps the ImageNet weights of `name` (torch.hub's checkpoints folder)."""
    if name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    enum = torchvision.models.get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
