"""Domain-randomised pybullet renders of procedural shapes: the pre-training images.

The robot learns SimWorld's objects online, as iCub learned iCubWorld's objects on top of an
ImageNet network; so none of SimWorld's meshes appear here (Tobin et al. 2017's domain
randomisation, on shapes of our own). Each *shape class* is one to three primitives (box,
sphere, cylinder, capsule) of seeded sizes and relative poses, joined rigidly; every frame
draws the object's full 3-D orientation, a palette colour and maybe a procedural texture for
each part, the floor's and wall's colour or texture, the light and the camera. The crop around
the object's segmentation mask is taken exactly as SimWorld's (`square_roi` + `crop`), so the
network sees objects framed the way the guard will show them.

Two labels per image: the shape class, and the palette colour of its first part. Training on
both keeps colour in the features (SimWorld28's look-alike instances differ by a tint).

Poses (`pose`): ``"upright"`` (the default) stands each class in one seeded rest orientation of
its own on the floor and draws only the yaw and a small tilt per frame, as SimWorld's objects
stand on the table; a class then looks like one object seen from around, and the shape task is
learnable in a CPU's budget. ``"free"`` draws the full 3-D orientation per frame (the first
shipped checkpoint's renders): the same shape then covers every silhouette it can cast, and a
small network did not learn to tell 100 such classes apart in six epochs (docs/pretraining.md).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from ..core.roi import crop, square_roi
from ..sim.world import PybulletScene

log = logging.getLogger(__name__)

#: Base colours (RGB 0..1) of the colour label; each draw jitters one.
PALETTE = np.array([
    (0.85, 0.15, 0.15), (0.95, 0.55, 0.1), (0.9, 0.85, 0.15), (0.2, 0.7, 0.2),
    (0.15, 0.75, 0.8), (0.2, 0.3, 0.85), (0.6, 0.25, 0.75), (0.85, 0.85, 0.85),
])
PRIMITIVES = ("box", "sphere", "cylinder", "capsule")
EXTENT = 0.12  # metres: every shape is scaled to this largest extent, like SimWorld's objects
N_TEXTURES = 24
POSES = ("upright", "free")
TILT_DEG = 8.0  # "upright": the per-frame tilt's standard deviation (degrees) about the rest orientation


@dataclass(frozen=True)
class Part:
    kind: str
    size: tuple[float, float, float]  # half extents (box), radius (sphere), radius+length (cylinder/capsule)
    offset: tuple[float, float, float]
    orientation: tuple[float, float, float, float]


def shape_classes(n: int, seed: int) -> list[list[Part]]:
    """`n` seeded shape classes of 1-3 primitives each, each scaled to `EXTENT`."""
    rng = np.random.default_rng([seed, 7001])
    classes = []
    for _ in range(n):
        parts = []
        for j in range(int(rng.integers(1, 4))):
            kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
            dims = rng.uniform(0.15, 1.0, 3)
            offset = (0.0, 0.0, 0.0) if j == 0 else tuple(rng.uniform(-0.8, 0.8, 3))
            q = rng.normal(size=4)
            parts.append(Part(kind, tuple(dims), offset, tuple(q / np.linalg.norm(q))))
        reach = max(np.linalg.norm(p.offset) + max(p.size) * (2 if p.kind == "capsule" else 1) for p in parts)
        s = EXTENT / 2 / reach
        classes.append([Part(p.kind, tuple(np.multiply(p.size, s)), tuple(np.multiply(p.offset, s)), p.orientation)
                        for p in parts])
    return classes


def frame_orientation(rng: np.random.Generator, rest: tuple[float, ...], pose: str) -> list[float]:
    """One frame's orientation quaternion (x, y, z, w): the class's `rest` one turned about the vertical and
    tilted by `TILT_DEG` ("upright"), or a uniformly random one ("free", the draw the first checkpoint's renders
    made: the same generator calls, so the same pixels)."""
    if pose == "free":
        q = rng.normal(size=4)
        return (q / np.linalg.norm(q)).tolist()
    tilt = np.radians(rng.normal(0, TILT_DEG, 2))
    turn = Rotation.from_euler("xyz", [tilt[0], tilt[1], rng.uniform(0, 2 * np.pi)])
    return (turn * Rotation.from_quat(rest)).as_quat().tolist()


def texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A procedural grey texture: value noise, stripes, checks or dots (multiplied by a colour when drawn)."""
    kind = int(rng.integers(4))
    yy, xx = np.mgrid[0:size, 0:size] / size
    if kind == 0:
        cells = int(rng.integers(3, 12))
        t = cv2.resize(rng.uniform(0, 1, (cells, cells)).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_CUBIC)
    elif kind == 1:
        a, f = rng.uniform(0, np.pi), rng.uniform(3, 12)
        t = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * f * (xx * np.cos(a) + yy * np.sin(a))))
    elif kind == 2:
        f = int(rng.integers(2, 9))
        t = ((np.floor(xx * f) + np.floor(yy * f)) % 2).astype(np.float32)
    else:
        t = np.ones((size, size), np.float32)
        for _ in range(int(rng.integers(5, 30))):
            c = rng.uniform(0, size, 2)
            cv2.circle(t, (int(c[0]), int(c[1])), int(rng.integers(2, 8)), float(rng.uniform(0, 0.5)), -1)
    t = np.clip(0.35 + 0.65 * t, 0, 1)
    return (np.repeat(t[..., None], 3, axis=2) * 255).astype(np.uint8)


class ShapeRenderer(PybulletScene):
    """Renders seeded, domain-randomised frames of procedural shape classes (pybullet, CPU, no display)."""

    def __init__(self, classes: list[list[Part]], image_size: int = 128, seed: int = 0, pose: str = "upright"):
        if pose not in POSES:
            raise ValueError(f"pose must be one of {POSES}, not {pose!r}")
        super().__init__()
        p, cid = self.p, self.cid
        self.classes, self.size, self.seed, self.pose = classes, int(image_size), int(seed), pose
        box = p.createVisualShape(p.GEOM_BOX, halfExtents=[3.0, 3.0, 0.01], physicsClientId=cid)
        self.floor = p.createMultiBody(baseVisualShapeIndex=box, basePosition=[0, 0, -0.01], physicsClientId=cid)
        wall = p.createVisualShape(p.GEOM_BOX, halfExtents=[0.01, 3.0, 2.0], physicsClientId=cid)
        self.wall = p.createMultiBody(baseVisualShapeIndex=wall, basePosition=[-0.6, 0, 1.0], physicsClientId=cid)
        trng = np.random.default_rng([seed, 7002])
        with tempfile.TemporaryDirectory() as tmp:
            self.textures = []
            for i in range(N_TEXTURES):
                path = Path(tmp) / f"t{i}.png"
                cv2.imwrite(str(path), texture(trng))
                self.textures.append(p.loadTexture(str(path), physicsClientId=cid))
        self.bodies = [self._build(parts, k) for k, parts in enumerate(classes)]

    def _visual(self, part: Part) -> int:
        p, cid = self.p, self.cid
        if part.kind == "box":
            return p.createVisualShape(p.GEOM_BOX, halfExtents=list(part.size), physicsClientId=cid)
        if part.kind == "sphere":
            return p.createVisualShape(p.GEOM_SPHERE, radius=part.size[0], physicsClientId=cid)
        geom = p.GEOM_CYLINDER if part.kind == "cylinder" else p.GEOM_CAPSULE
        return p.createVisualShape(geom, radius=part.size[0], length=2 * part.size[1], physicsClientId=cid)

    def _build(self, parts: list[Part], slot: int) -> int:
        p, cid = self.p, self.cid
        vis = [self._visual(q) for q in parts]
        rest = parts[1:]
        return p.createMultiBody(
            baseMass=0, baseVisualShapeIndex=vis[0], basePosition=[50.0 + slot, 50.0, 0.0],
            linkMasses=[0] * len(rest), linkCollisionShapeIndices=[-1] * len(rest), linkVisualShapeIndices=vis[1:],
            linkPositions=[list(q.offset) for q in rest], linkOrientations=[list(q.orientation) for q in rest],
            linkInertialFramePositions=[[0, 0, 0]] * len(rest),
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * len(rest), linkParentIndices=[0] * len(rest),
            linkJointTypes=[p.JOINT_FIXED] * len(rest), linkJointAxis=[[0, 0, 1]] * len(rest),
            baseOrientation=list(parts[0].orientation), physicsClientId=cid)

    def _paint(self, body: int, link: int, rng: np.random.Generator, colour: np.ndarray) -> None:
        tex = self.textures[int(rng.integers(len(self.textures)))] if rng.random() < 0.4 else -1
        self.p.changeVisualShape(body, link, rgbaColor=[*colour.tolist(), 1.0], textureUniqueId=tex,
                                 physicsClientId=self.cid)

    def render(self, k: int, index: int, crop_size: int = 64) -> tuple[np.ndarray, int]:
        """Crop (crop_size² × 3 uint8) of frame `index` of class `k`, and its colour label."""
        p, cid, size = self.p, self.cid, self.size
        rng = np.random.default_rng([self.seed, k, index])
        body, n_parts = self.bodies[k], len(self.classes[k])
        colour_id = int(rng.integers(len(PALETTE)))
        for link in range(-1, n_parts - 1):
            c = PALETTE[colour_id if link == -1 or rng.random() < 0.5 else int(rng.integers(len(PALETTE)))]
            self._paint(body, link, rng, np.clip(c + rng.normal(0, 0.06, 3), 0, 1))
        for surface in (self.floor, self.wall):
            self._paint(surface, -1, rng, rng.uniform(0.2, 1.0, 3) * rng.uniform(0.5, 1.0))
        q = frame_orientation(rng, self.classes[k][0].orientation, self.pose)
        p.resetBasePositionAndOrientation(body, [0, 0, 0.5], q, physicsClientId=cid)
        lo, hi = p.getAABB(body, physicsClientId=cid)
        for link in range(n_parts - 1):
            llo, lhi = p.getAABB(body, link, physicsClientId=cid)
            lo, hi = np.minimum(lo, llo), np.maximum(hi, lhi)
        pos = [rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), 0.5 - lo[2]]
        p.resetBasePositionAndOrientation(body, pos, q, physicsClientId=cid)
        centre = (np.add(lo, hi) / 2 + np.array([pos[0], pos[1], pos[2] - 0.5]) + rng.normal(0, 0.01, 3)).tolist()
        view = p.computeViewMatrixFromYawPitchRoll(centre, EXTENT * rng.uniform(2.2, 3.6), rng.uniform(-60, 60),
                                                   rng.uniform(-60, -10), rng.normal(0, 4), 2, physicsClientId=cid)
        proj = p.computeProjectionMatrixFOV(60, 1.0, 0.01, 10, physicsClientId=cid)
        light = (rng.normal(0, 1, 3) + np.array([0.0, 0.0, 2.0])).tolist()
        _, _, rgba, _, seg = p.getCameraImage(
            size, size, view, proj, renderer=p.ER_TINY_RENDERER, lightDirection=light,
            lightColor=rng.uniform(0.7, 1.0, 3).tolist(), lightAmbientCoeff=rng.uniform(0.3, 0.7),
            lightDiffuseCoeff=rng.uniform(0.3, 0.8), shadow=int(rng.integers(0, 2)), physicsClientId=cid)
        image = np.asarray(rgba, np.uint8).reshape(size, size, 4)[:, :, :3]
        mask = (np.asarray(seg).reshape(size, size) & ((1 << 24) - 1)) == body
        p.resetBasePositionAndOrientation(body, [50.0 + k, 50.0, 0.0], [0, 0, 0, 1], physicsClientId=cid)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            roi = (0, 0, size, size)
        else:
            roi = square_roi((int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)))
        return crop(image, roi, crop_size), colour_id


def render_dataset(n_classes: int, per_class: int, crop_size: int = 64, image_size: int = 128, seed: int = 0,
                   first: int = 0, progress: bool = True, pose: str = "upright",
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images N×S×S×3 uint8, shape labels, colour labels) for `n_classes` × `per_class` frames.

    Frames `first` .. `first + per_class - 1` of each class: a later `first` gives unseen frames of the same shapes.
    """
    classes = shape_classes(n_classes, seed)
    images = np.empty((n_classes * per_class, crop_size, crop_size, 3), np.uint8)
    shapes = np.repeat(np.arange(n_classes), per_class).astype(np.int64)
    colours = np.empty(len(shapes), np.int64)
    with ShapeRenderer(classes, image_size, seed, pose) as r:
        for i in tqdm(range(len(shapes)), desc="render", unit="img", disable=not progress):
            images[i], colours[i] = r.render(int(shapes[i]), first + i % per_class, crop_size)
    return images, shapes, colours
