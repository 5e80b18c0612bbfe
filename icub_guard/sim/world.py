"""A seeded pybullet tabletop seen from a robot's head camera.

One object at a time sits on a table; each frame draws its pose, the camera's
distance/elevation/aim, the light and the wall colour from a generator seeded by
(seed, object, frame index), so frame i of an object is the same whatever else is
rendered. The ROI is the bounding box of the object's segmentation mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: The seven object kinds of SimWorld7, from pybullet_data.
OBJECT_KINDS: dict[str, str] = {
    "mug": "objects/mug.urdf",
    "duck": "duck_vhacd.urdf",
    "teddy": "teddy_vhacd.urdf",
    "lego": "lego/lego.urdf",
    "jenga": "jenga/jenga.urdf",
    "domino": "domino/domino.urdf",
    "soccerball": "soccerball.urdf",
}

#: Four instances per kind for SimWorld28: a colour tint and a size each, so that
#: instances of a kind look alike (the paper's cup1..cup4 difficulty).
INSTANCE_VARIANTS: tuple[tuple[tuple[float, float, float, float], float], ...] = (
    ((1.0, 1.0, 1.0, 1.0), 1.0),
    ((1.0, 0.55, 0.55, 1.0), 0.9),
    ((0.55, 0.75, 1.0, 1.0), 1.1),
    ((0.6, 1.0, 0.6, 1.0), 0.8),
)

OBJECT_SIZE = 0.12  # metres: every object is scaled to this largest extent


@dataclass(frozen=True)
class ObjectSpec:
    label: str
    urdf: str
    tint: tuple[float, float, float, float] | None = None
    scale: float = 1.0


@dataclass
class Frame:
    image: np.ndarray  # H×W×3 uint8 RGB
    roi: tuple[int, int, int, int]  # x, y, w, h of the object in the image
    label: str
    mask: np.ndarray  # H×W bool, the object's pixels


def simworld_objects(variant: str = "7") -> list[ObjectSpec]:
    """The object list of SimWorld7 (one per kind) or SimWorld28 (4 per kind)."""
    if variant == "7":
        return [ObjectSpec(k, u) for k, u in OBJECT_KINDS.items()]
    if variant == "28":
        return [ObjectSpec(f"{k}{i + 1}", u, tint, s)
                for k, u in OBJECT_KINDS.items() for i, (tint, s) in enumerate(INSTANCE_VARIANTS)]
    raise ValueError(f"unknown SimWorld variant {variant!r}; use '7' or '28'")


class PybulletScene:
    """A pybullet client of its own (DIRECT: CPU renderer, no display), closed once; a context manager."""

    def __init__(self):
        import pybullet as p

        self.p = p
        self.cid = p.connect(p.DIRECT)

    def close(self) -> None:
        if self.cid is not None:
            self.p.disconnect(physicsClientId=self.cid)
            self.cid = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class TabletopSim(PybulletScene):
    """Renders frames of `objects` with pybullet's CPU renderer (no display, no GPU)."""

    def __init__(self, objects: list[ObjectSpec], image_size: int = 128, seed: int = 0):
        import pybullet_data

        if not objects:
            raise ValueError("TabletopSim needs at least one object")
        super().__init__()
        p = self.p
        self.objects, self.size, self.seed = objects, int(image_size), int(seed)
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.cid)
        self.table = p.loadURDF("table/table.urdf", [0, 0, 0], physicsClientId=self.cid)
        self.table_top = p.getAABB(self.table, physicsClientId=self.cid)[1][2]
        wall_shape = p.createVisualShape(p.GEOM_BOX, halfExtents=[0.05, 3.0, 2.0], physicsClientId=self.cid)
        self.wall = p.createMultiBody(baseVisualShapeIndex=wall_shape, basePosition=[-1.2, 0, 1.0],
                                      physicsClientId=self.cid)
        self.bodies = [self._load(o, i) for i, o in enumerate(objects)]

    def _load(self, spec: ObjectSpec, slot: int) -> int:
        p, cid = self.p, self.cid
        park = [50.0 + 5 * slot, 50.0, 0.0]
        probe = p.loadURDF(spec.urdf, park, physicsClientId=cid)
        lo, hi = p.getAABB(probe, physicsClientId=cid)
        p.removeBody(probe, physicsClientId=cid)
        scale = OBJECT_SIZE * spec.scale / max(np.subtract(hi, lo))
        body = p.loadURDF(spec.urdf, park, globalScaling=scale, physicsClientId=cid)
        if spec.tint is not None:
            for link in range(-1, p.getNumJoints(body, physicsClientId=cid)):
                p.changeVisualShape(body, link, rgbaColor=list(spec.tint), physicsClientId=cid)
        return body

    def render(self, obj: int, index: int, stream: int = 0) -> Frame:
        """Frame `index` of object `obj`; `stream` separates train/test/live draws."""
        p, cid, size = self.p, self.cid, self.size
        rng = np.random.default_rng([self.seed, stream, obj, index])
        body = self.bodies[obj]
        yaw = rng.uniform(0, 2 * np.pi)
        orn = p.getQuaternionFromEuler([0, 0, yaw])
        xy = rng.uniform(-0.08, 0.08, 2)
        p.resetBasePositionAndOrientation(body, [xy[0], xy[1], self.table_top + 0.5], orn, physicsClientId=cid)
        lo, hi = p.getAABB(body, physicsClientId=cid)
        z = self.table_top + 0.5 - (lo[2] - self.table_top)
        p.resetBasePositionAndOrientation(body, [xy[0], xy[1], z], orn, physicsClientId=cid)
        lo, hi = p.getAABB(body, physicsClientId=cid)
        centre = (np.add(lo, hi) / 2 + rng.normal(0, 0.01, 3)).tolist()
        wall = np.clip(rng.uniform(0.35, 1.0, 3) * rng.uniform(0.6, 1.0), 0, 1).tolist()
        p.changeVisualShape(self.wall, -1, rgbaColor=[*wall, 1.0], physicsClientId=cid)
        view = p.computeViewMatrixFromYawPitchRoll(centre, OBJECT_SIZE * rng.uniform(2.4, 3.4),
                                                   rng.uniform(-30, 30),
                                                   rng.uniform(-45, -20), rng.normal(0, 3), 2,
                                                   physicsClientId=cid)
        proj = p.computeProjectionMatrixFOV(60, 1.0, 0.01, 10, physicsClientId=cid)
        light = (rng.normal(0, 1, 3) + np.array([0.0, 0.0, 2.0])).tolist()
        _, _, rgba, _, seg = p.getCameraImage(
            size, size, view, proj, renderer=p.ER_TINY_RENDERER, lightDirection=light,
            lightColor=rng.uniform(0.8, 1.0, 3).tolist(), lightAmbientCoeff=rng.uniform(0.4, 0.7),
            lightDiffuseCoeff=rng.uniform(0.4, 0.7), shadow=int(rng.integers(0, 2)), physicsClientId=cid)
        image = np.asarray(rgba, np.uint8).reshape(size, size, 4)[:, :, :3].copy()
        mask = np.asarray(seg).reshape(size, size) == body
        p.resetBasePositionAndOrientation(body, [50.0 + 5 * obj, 50.0, 0.0], orn, physicsClientId=cid)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:  # cannot happen with the camera aimed at the object; be explicit anyway
            raise RuntimeError(f"object {self.objects[obj].label} not visible in frame {index}")
        roi = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
        return Frame(image, roi, self.objects[obj].label, mask)
