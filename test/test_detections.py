"""A detector's vision_msgs/Detection2DArray as guard_node's regions (`messages.detection_regions`).

Duck-typed messages (SimpleNamespace): these run where vision_msgs is not installed (CI); the conversion only
reads attributes. One test checks the real message type where vision_msgs is importable.
"""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import pytest

from icub_guard.core.errors import InputError
from icub_guard.core.roi import ROI, clamp_roi
from icub_guard.ros.messages import detection_regions


def det(cx, cy, sx, sy, id_="", theta=0.0, old=False):
    """A Detection2D: vision_msgs 4's Pose2D centre (`position.x/.y`), or the older one (`x/y`) with `old`."""
    center = NS(x=cx, y=cy, theta=theta) if old else NS(position=NS(x=cx, y=cy), theta=theta)
    return NS(bbox=NS(center=center, size_x=sx, size_y=sy), id=id_, results=[])


def array(*dets):
    return NS(header=NS(frame_id="camera"), detections=list(dets))


def test_a_detection_array_becomes_boxes_on_the_pixel_grid_with_their_ids():
    boxes, ids = detection_regions(array(det(50.0, 40.0, 20.0, 10.0, "cup-1"), det(10.3, 20.7, 5.2, 3.9, "7")))
    # edges rounded to the nearest pixel: x 7.7..12.9 → 8..13, y 18.75..22.65 → 19..23
    assert boxes == [(40, 35, 20, 10), (8, 19, 5, 4)]
    assert ids == ["cup-1", "7"]
    assert all(isinstance(v, int) for b in boxes for v in b)


def test_both_pose2d_layouts_give_the_same_boxes():
    new = detection_regions(array(det(50.0, 40.0, 20.0, 10.0, "a"), det(10.3, 20.7, 5.2, 3.9, "b")))
    old = detection_regions(array(det(50.0, 40.0, 20.0, 10.0, "a", old=True),
                                  det(10.3, 20.7, 5.2, 3.9, "b", old=True)))
    assert old == new


def test_half_pixel_edges_round_up_and_a_rotated_box_is_enclosed():
    assert detection_regions(array(det(10.0, 10.0, 5.0, 5.0)))[0] == [(8, 8, 5, 5)]  # 7.5..12.5 → 8..13
    turned = detection_regions(array(det(50.0, 40.0, 20.0, 10.0, theta=math.pi / 2)))[0]
    assert turned == [(45, 30, 10, 20)]  # a quarter turn: width and height swap


def test_a_box_over_the_frame_edge_is_left_to_the_frames_clipping():
    """Not clipped here (the frame's size is not known yet): clipped, like a Region, when the frame comes."""
    boxes, _ = detection_regions(array(det(2.0, 3.0, 10.0, 10.0)))
    assert boxes == [(-3, -2, 10, 10)]
    assert clamp_roi(boxes[0], 64, 48) == ROI(0, 0, 7, 8)


def test_an_empty_array_clears_the_regions():
    assert detection_regions(array()) == ([], [])


@pytest.mark.parametrize(("bad", "why"), [
    (det(math.nan, 40.0, 20.0, 10.0), "non-finite"),
    (det(50.0, 40.0, math.inf, 10.0), "non-finite"),
    (det(50.0, 40.0, 20.0, -math.inf), "non-finite"),
    (det(50.0, 40.0, 20.0, 10.0, theta=math.nan), "non-finite"),
    (det(50.0, 40.0, -20.0, 10.0), "non-positive size"),
    (det(50.0, 40.0, 20.0, 0.0), "non-positive size"),
    (det(50.0, 40.0, 0.0, 0.0, old=True), "non-positive size"),
    (det(50.0, 40.0, 0.4, 10.0), "no whole pixel"),
    (det(1e300, 40.0, 20.0, 10.0), "beyond any frame"),
    (NS(id="x"), "not a Detection2D"),
    (det("fifty", 40.0, 20.0, 10.0), "not a Detection2D"),
])
def test_a_malformed_detection_refuses_the_whole_message_with_a_reason(bad, why):
    with pytest.raises(InputError, match=why) as err:
        detection_regions(array(det(50.0, 40.0, 20.0, 10.0, "ok"), bad))
    assert "detection 1" in str(err.value)  # which one, of the message


def test_the_real_vision_msgs_message_converts():
    vm = pytest.importorskip("vision_msgs.msg",
                             reason="vision_msgs is not on PyPI (built from source, it runs: docs/ros-interface.md)")
    d = vm.Detection2D(id="cup-1")
    d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y = 50.0, 40.0, 20.0, 10.0
    assert detection_regions(vm.Detection2DArray(detections=[d])) == ([(40, 35, 20, 10)], ["cup-1"])
