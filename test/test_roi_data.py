"""ROI handling, the simulator and the dataset readers."""

import cv2
import numpy as np
import pytest

from icub_guard.core import InputError, RoiSelector, crop, propose_roi
from icub_guard.core.roi import clamp_roi
from icub_guard.sim.datasets import image_folder, load_dataset, simworld
from icub_guard.sim.world import TabletopSim, simworld_objects


def test_crop_clamps_and_resizes():
    img = np.arange(20 * 30 * 3, dtype=np.uint8).reshape(20, 30, 3)
    assert crop(img, (25, 15, 10, 10)).shape == (5, 5, 3)
    assert crop(img, (0, 0, 30, 20), size=16).shape == (16, 16, 3)
    assert np.array_equal(crop(img, (2, 3, 4, 5)), img[3:8, 2:6])
    assert clamp_roi((-5, -5, 10, 10), 30, 20).as_tuple() == (0, 0, 5, 5)


@pytest.mark.parametrize("roi", [(30, 0, 5, 5), (0, 20, 5, 5), (-10, 0, 5, 5), (0, 0, 0, 5), (0, 0, 5, -1)])
def test_out_of_bounds_or_empty_roi_is_a_clear_error(roi):
    with pytest.raises(InputError, match="ROI"):
        crop(np.zeros((20, 30, 3), np.uint8), roi)


def test_roi_modes():
    img = np.zeros((40, 60, 3), np.uint8)
    assert RoiSelector("full").select(img).as_tuple() == (0, 0, 60, 40)
    assert RoiSelector("fixed", (5, 5, 10, 10)).select(img).as_tuple() == (5, 5, 10, 10)
    assert RoiSelector("full").select(img, (1, 1, 2, 2)).as_tuple() == (1, 1, 2, 2)
    with pytest.raises(InputError):
        RoiSelector("fixed")
    with pytest.raises(InputError):
        RoiSelector("magic")


def test_auto_roi_finds_the_simulated_object():
    hits = 0
    with TabletopSim(simworld_objects("7"), 128, seed=3) as sim:
        for k in range(7):
            f = sim.render(k, 0)
            r = propose_roi(f.image)
            x, y, w, h = f.roi
            cx, cy = x + w / 2, y + h / 2
            hits += r.x <= cx <= r.x + r.w and r.y <= cy <= r.y + r.h and r.w * r.h < 0.6 * 128 * 128
    assert hits >= 6


def test_simulator_is_deterministic_and_splits_differ():
    a = simworld("7", "train", 3)
    b = simworld("7", "train", 3)
    c = simworld("7", "test", 3)
    assert np.array_equal(a.images, b.images) and list(a.labels) == list(b.labels)
    assert not np.array_equal(a.images, c.images)
    assert a.images.shape == (21, 64, 64, 3) and a.classes == sorted(simworld_objects("7")[i].label for i in range(7))
    # frame i of a class does not depend on how many frames were asked for
    assert np.array_equal(simworld("7", "train", 1).images[0], a.images[0])


def test_simworld28_has_28_lookalike_classes():
    d = simworld("28", "train", 1)
    assert len(d.classes) == 28 and {c.rstrip("1234") for c in d.classes} == {o.label for o in simworld_objects("7")}


def test_frames_carry_roi_of_the_mask():
    with TabletopSim(simworld_objects("7"), 128, seed=0) as sim:
        f = sim.render(0, 0)
    ys, xs = np.nonzero(f.mask)
    assert f.roi == (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    assert f.image.shape == (128, 128, 3) and f.image.dtype == np.uint8


def test_image_folder_reader(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cup1", "cup2"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            cv2.imwrite(str(tmp_path / cls / f"{i}.png"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    (tmp_path / "cup2" / "broken.jpg").write_bytes(b"nope")
    d = image_folder(tmp_path, crop_size=32)
    assert d.images.shape == (6, 32, 32, 3) and d.classes == ["cup1", "cup2"]
    assert len(load_dataset(str(tmp_path), "train", n_per_class=2)) == 4
    with pytest.raises(InputError):
        image_folder(tmp_path / "nowhere")
