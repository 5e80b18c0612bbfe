"""The ROS layer as real processes over rclpy: guard, teacher, attack and camera nodes.

Tests in this module share one guard process (starting torch costs seconds) and
run in file order: they teach it, restart it, attack it.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import rclpy
from icub_guard_msgs.srv import Confirm, Forget, ForgetTeacher, Teach
from rcl_interfaces.msg import ParameterType
from rclpy.qos import QoSProfile
from rclpy.time import Time
from sensor_msgs.msg import Image, RegionOfInterest
from std_msgs.msg import Header, String

from icub_guard.ros import messages
from icub_guard.ros.common import EVENT_QOS, FEEDBACK_QOS, FRAME_QOS
from icub_guard.ros.convert import image_to_rgb, rgb_to_image
from icub_guard.sim.world import TabletopSim, simworld_objects

from ros_harness import Harness, start_node, stop

GUARD = {"weights": "random", "input_size": 64, "crop_size": 48, "query_rate_limit": 100.0, "device": "cpu",
         "diagnostics_period": 0.3}


@pytest.fixture(scope="module")
def ros():
    rclpy.init()
    h = Harness()
    yield h
    h.destroy_node()
    rclpy.shutdown()


@pytest.fixture(scope="module")
def frames():
    """Four frames each of mug (0) and duck (1) and one of teddy (2), with ROIs."""
    with TabletopSim(simworld_objects("7"), 96, seed=0) as sim:
        return {k: [sim.render(k, i, stream=3) for i in range(4)] for k in range(3)}


@pytest.fixture(scope="module")
def guard(tmp_path_factory):
    d = tmp_path_factory.mktemp("guard")
    state = {"dir": d, "model": d / "model.npz"}
    state["proc"] = start_node("guard_node", {**GUARD, "model_path": str(state["model"])}, d / "guard.log")
    yield state
    stop(state["proc"])


def wait_ready(ros, proc, timeout=60.0):
    ros.wait_for(lambda: proc.poll() is not None or any("guard_node" in k for k in ros.diag), timeout, "guard_node")
    assert proc.poll() is None, "guard_node exited"
    for topic in ("decision", "label", "teacher/query"):
        ros.wait_matched(topic, "guard_node")


def teach(ros, frame, label):
    """Show a frame; tell the guard what it was (answering its query, or correcting/confirming it)."""
    d = ros.frame_and_decision(frame.image, frame.roi)
    key = {"query_id": d["query_id"]} if d["query_id"] is not None else {"decision_id": d["id"]}
    res = ros.teach(label, **key)
    assert res.outcome in ("learned", "held"), res.reason
    assert res.decision_id == d["id"] and res.target == ("query" if "query_id" in key else "decision")
    return d


def diag(ros):
    return next(v for k, v in ros.diag.items() if "guard_node" in k)


def test_unknown_object_is_queried_and_every_frame_gets_a_label(ros, guard, frames):
    wait_ready(ros, guard["proc"])
    n0 = len(ros.msgs["label"])
    d = ros.frame_and_decision(frames[0][0].image, frames[0][0].roi)
    assert (d["label"], d["accepted"], d["reason"]) == ("unknown", False, "no_classes")
    assert d["roi_source"] == "topic" and d["latency_ms"] > 0 and d["frame_id"] == "camera"
    assert d["roi"] == list(frames[0][0].roi)
    ros.wait_for(lambda: ros.msgs["teacher/query"] and ros.msgs["teacher/query_image"], 10, "query + image")
    q = ros.msgs["teacher/query"][-1]
    assert q["query_id"] == d["query_id"] and q["decision_id"] == d["id"] and q["stamp"] == d["stamp"]
    assert q["reason"] == "no_classes"
    for f in frames[1][:3]:
        ros.frame_and_decision(f.image, f.roi)
    ros.wait_for(lambda: len(ros.msgs["label"]) >= n0 + 4, 10, "4 labels")


def test_feedback_teaches_and_then_frames_get_the_label(ros, guard, frames):
    for i in range(3):
        teach(ros, frames[0][i], "mug")
        teach(ros, frames[1][i], "duck")
    ros.wait_for(lambda: diag(ros).get("classes") == "2", 10, "2 classes in diagnostics")
    ros.wait_for(lambda: ros.msgs["classes"] and len(ros.msgs["classes"][-1].class_names) == 2, 10, "the classes")
    assert sorted(ros.msgs["classes"][-1].class_names) == ["duck", "mug"]  # latched: announced when they change
    d_mug = ros.frame_and_decision(frames[0][3].image, frames[0][3].roi)
    d_duck = ros.frame_and_decision(frames[1][3].image, frames[1][3].roi)
    assert set(d_mug["scores"]) == {"mug", "duck"}
    assert d_mug["scores"]["mug"] > d_mug["scores"]["duck"] and d_duck["scores"]["duck"] > d_duck["scores"]["mug"]
    assert d_mug["label"] in ("mug", "unknown") and d_duck["label"] in ("duck", "unknown")
    assert guard["model"].exists()  # autosave


def test_plain_label_feedback_answers_the_latest_query(ros, guard, frames):
    assert ros.set_param("guard_node", "threshold", 9.0)  # everything is rejected → queried
    d = ros.frame_and_decision(frames[2][0].image, frames[2][0].roi)
    assert not d["accepted"] and d["query_id"] is not None
    ros.pub_feedback.publish(String(data="teddy"))
    ros.wait_for(lambda: diag(ros).get("classes") == "3", 10, "teddy learned")
    assert ros.set_param("guard_node", "threshold", 0.0)


def test_a_plain_label_at_a_persons_pace_names_the_object_in_view(ros, guard, frames):
    """No open question within the window (the earlier tests' questions grow old): a plain label seconds
    after a frame names the latest decision; past the window it names nothing."""
    assert ros.set_param("guard_node", "query_on_reject", False)
    assert ros.set_param("guard_node", "plain_label_window", 3.0)  # the window is a runtime parameter
    ros.spin_for(3.5)  # every open question is older than the window now
    d = ros.frame_and_decision(frames[2][1].image, frames[2][1].roi)
    assert d["query_id"] is None
    ros.spin_for(1.5)  # a person reads the screen and types
    res = ros.teach("teddy", teacher="person")
    assert res.outcome in ("learned", "held") and res.target == "latest_decision", res.reason
    assert res.decision_id == d["id"] and "the object in view" in res.reason
    ros.spin_for(3.5)
    res = ros.teach("teddy", teacher="person")
    assert res.outcome == "invalid" and "no decision in the last 3 s" in res.reason
    assert not ros.set_param("guard_node", "plain_label_window", 0.0)  # out of its range
    assert ros.set_param("guard_node", "plain_label_window", 10.0)
    assert ros.set_param("guard_node", "query_on_reject", True)


def test_confirm_learns_the_last_prediction(ros, guard, frames):
    assert ros.set_param("guard_node", "threshold", -9.0)  # everything accepted
    d = ros.frame_and_decision(frames[0][2].image, frames[0][2].roi)
    assert d["accepted"]
    ros.spin_for(0.7)
    before = int(diag(ros)["examples"])
    res = ros.call(Confirm, "/guard_node/confirm", Confirm.Request(teacher="ann"))
    assert res.outcome == "learned" and res.decision_id == d["id"] and res.journal_seq > 0, res.reason
    ros.wait_for(lambda: int(diag(ros)["examples"]) == before + 1, 10, "one more example")
    assert ros.set_param("guard_node", "threshold", 0.0)


def test_runtime_parameters_take_effect_and_bad_values_are_refused(ros, guard, frames):
    assert ros.set_param("guard_node", "threshold", 9.0)
    assert not ros.frame_and_decision(frames[0][3].image, frames[0][3].roi)["accepted"]
    assert ros.set_param("guard_node", "class_thresholds", json.dumps({"mug": -10.0}))  # the lowest in range
    d = ros.frame_and_decision(frames[0][3].image, frames[0][3].roi)
    assert d["thresholds"]["mug"] == -10.0 and d["thresholds"]["duck"] == 9.0
    assert not ros.set_param("guard_node", "class_thresholds", json.dumps({"mug": -50.0}))  # out of range
    assert not ros.set_param("guard_node", "class_thresholds", "not json")
    assert not ros.set_param("guard_node", "threshold", 1e9)  # outside the declared range
    assert not ros.set_param("guard_node", "threshold", 20)  # an integer outside it too
    assert not ros.set_param("guard_node", "threshold", "high")
    assert ros.set_param("guard_node", "threshold", 1)  # `ros2 param set ... threshold 1` sends an integer
    assert ros.frame_and_decision(frames[0][3].image, frames[0][3].roi)["thresholds"]["duck"] == 1.0
    kind, desc = ros.describe_param("guard_node", "threshold")  # it stays a double, its range in the descriptor
    assert kind == ParameterType.PARAMETER_DOUBLE == desc.type
    assert [(r.from_value, r.to_value) for r in desc.floating_point_range] == [(-10.0, 10.0)]
    _, desc = ros.describe_param("guard_node", "screening_refuse_at")  # a screening setting's range, from the core
    assert [(r.from_value, r.to_value) for r in desc.floating_point_range] == [(0.0, 1.0)] and desc.description
    assert not ros.set_param("guard_node", "backbone", "vgg16")  # read-only
    assert ros.set_param("guard_node", "class_thresholds", "")
    assert ros.set_param("guard_node", "threshold", 0.0)
    res = ros.set_bool("/guard_node/set_learning", False)
    assert res.success
    n = int(diag(ros)["examples"])
    res = ros.teach("mug", decision_id=ros.decisions()[-1]["id"])
    assert res.outcome == "ignored" and "learning is off" in res.reason
    ros.spin_for(1.0)
    assert int(diag(ros)["examples"]) == n  # nothing learned while learning is off
    assert ros.set_bool("/guard_node/set_learning", True).success


def test_defences_are_a_runtime_parameter_and_decisions_name_the_stage(ros, guard, frames):
    assert not ros.set_param("guard_node", "defences", "multicrop,nope")  # refused in the on-set callback
    assert not ros.set_param("guard_node", "defences", "smoothing,blur")  # smoothing stands alone
    assert not ros.set_param("guard_node", "defences", "jpeg:quality=0")
    d = ros.frame_and_decision(frames[0][3].image, frames[0][3].roi)
    assert d["stages"] == {} and d["certified_radius"] is None  # still no defences
    assert ros.set_param("guard_node", "defences", "multicrop,mahalanobis:false_reject=0.5")
    d = ros.frame_and_decision(frames[1][2].image, frames[1][2].roi)
    assert set(d["stages"]) == {"classifier", "mahalanobis"}, d
    assert d["reason"] in ("accepted", "below_threshold", "detector")
    assert ros.set_param("guard_node", "defences", "mahalanobis:false_reject=0.5")
    reasons = {ros.frame_and_decision(f.image, f.roi)["reason"] for k in (0, 1) for f in frames[k]}
    assert "detector" in reasons, reasons  # its threshold passes only half of what was taught
    assert ros.set_param("guard_node", "defences", "adv_augment:eps=800:steps=2")  # learning, not deciding
    ros.spin_for(1.0)
    n, augmented = int(diag(ros)["examples"]), int(diag(ros).get("augmented", 0))
    teach(ros, frames[1][3], "duck")
    ros.wait_for(lambda: int(diag(ros).get("augmented", 0)) == augmented + 1, 30, "the attacked crop learned too")
    ros.wait_for(lambda: int(diag(ros)["examples"]) == n + 2, 10, "two examples from one label")
    assert ros.set_param("guard_node", "defences", "")
    assert ros.frame_and_decision(frames[0][3].image, frames[0][3].roi)["stages"] == {}


def _bad_images():
    good = np.zeros((20, 20, 3), np.uint8)
    out = []
    m = rgb_to_image(good)
    m.encoding = "yuv422"
    out.append(m)
    m = rgb_to_image(good)
    m.data = bytes(m.data)[:100]
    out.append(m)
    m = rgb_to_image(good)
    m.height = m.width = 0
    m.data = b""
    out.append(m)
    m = rgb_to_image(good)
    m.step = 10
    out.append(m)
    m = rgb_to_image(good)
    m.width, m.height = 100000, 1
    out.append(m)
    return out


def test_malformed_messages_leave_the_node_alive_and_counted(ros, guard, frames):
    before_fb = int(diag(ros).get("rejected_input.feedback", 0))
    before_img = int(diag(ros).get("rejected_input.image", 0))
    for m in _bad_images():
        ros.pub_image.publish(m)
        ros.spin_for(0.1)
    for text in ["", "   ", "x" * 200, "bad\x07label", '{"query_id": 99999, "label": "mug"}', "{not json",
                 '{"label": "mug"}', '{"decision_id": "7", "label": "mug"}', "unknown"]:
        ros.pub_feedback.publish(String(data=text))
        ros.spin_for(0.05)
    ros.send_frame(frames[0][0].image, (500, 500, 10, 10))  # ROI outside the image
    # 6 bad frames (best-effort: allow one to be dropped on the way) and 9 bad feedback messages (reliable)
    ros.wait_for(lambda: int(diag(ros).get("rejected_input.feedback", 0)) >= before_fb + 9
                 and int(diag(ros).get("rejected_input.image", 0)) >= before_img + 5, 15, "rejections counted")
    assert guard["proc"].poll() is None
    d = ros.frame_and_decision(frames[1][0].image, frames[1][0].roi)  # still working
    assert d["id"] > 0 and d["label"]


HOSTILE = ["[" * 3000 + "]" * 3000,  # ~6 kB, nested past any recursion limit: was RecursionError, exit 1
           '{"query_id": ' + "9" * 4400 + ', "label": "mug"}',  # past int() digit limit: was ValueError, exit 2
           '{"decision_id": ' + "1" * 5000 + ', "label": "mug"}', '{"query_id": 1, "label": "mug", "x": NaN}',
           '{"query_id": 1e999, "label": "mug"}', "{" * 50000, '{"decision_id": 1, "label": "UNKNOWN"}',
           '{"decision_id": 1, "label": "\uff55\uff4e\uff4b\uff4e\uff4f\uff57\uff4e"}', "x" * 70000,
           "\ufffd\ufffd\ufffd(mug\ufffd\ufffd\ufffd",  # bytes that were not UTF-8, as rclpy decodes them: was a class
           '{"decision_id": 1, "label": "mug", "teacher": "\ufffd"}']


def test_hostile_feedback_never_ends_the_guard(ros, guard, frames):
    before = int(diag(ros).get("rejected_input.feedback", 0))
    for text in HOSTILE:
        ros.pub_feedback.publish(String(data=text))
    ros.wait_for(lambda: int(diag(ros).get("rejected_input.feedback", 0)) >= before + len(HOSTILE), 20,
                 "every hostile message rejected and counted")
    assert guard["proc"].poll() is None
    assert int(diag(ros).get("callback_errors", 0)) == 0  # handled as bad input, not caught by the net
    assert ros.frame_and_decision(frames[1][0].image, frames[1][0].roi)["id"] > 0


def test_hostile_parameters_and_service_requests_get_a_reason(ros, guard, frames):
    for name, value in (("defences", ",,,,"), ("defences", "multicrop\n"), ("class_thresholds", '{"mug": 1e300}'),
                        ("query_rate_limit", 1e-300), ("threshold", float("nan"))):
        assert not ros.set_param("guard_node", name, value), (name, value)
    before = int(diag(ros).get("rejected_input.teach", 0))
    for kw in ({"label": "mug", "query_id": 1, "decision_id": 1}, {"label": "UNKNOWN", "decision_id": 1},
               {"label": "\ufffd\ufffd(mug", "decision_id": 1}, {"label": "mug", "decision_id": 1, "teacher": "\ufffd"},
               {"label": "mug", "query_id": 2**63}, {"label": "x" * 70000, "decision_id": 1}):
        res = ros.teach(**kw)
        assert res.outcome == "invalid" and res.reason, kw  # refused before screening, with the reason
    assert "at most one" in ros.teach("mug", query_id=1, decision_id=1).reason
    res = ros.call(ForgetTeacher, "/guard_node/forget_teacher", ForgetTeacher.Request(teacher="\u0007"))
    assert not res.success and res.message and res.removed == 0
    ros.wait_for(lambda: int(diag(ros).get("rejected_input.teach", 0)) >= before + 7, 10, "refusals counted")
    assert int(diag(ros).get("callback_errors", 0)) == 0 and guard["proc"].poll() is None


def test_a_burst_of_service_calls_is_answered(ros, guard):
    """200 calls at once: rclpy's default service queue (10) dropped most of them and their callers waited for ever."""
    client = ros.create_client(Forget, "/guard_node/forget", qos_profile=QoSProfile(depth=1000))  # its replies
    assert client.wait_for_service(timeout_sec=20)
    futures = [client.call_async(Forget.Request(decision_id=10**9 + i)) for i in range(200)]
    end = time.monotonic() + 60
    while not all(f.done() for f in futures) and time.monotonic() < end:
        rclpy.spin_once(ros, timeout_sec=0.1)
    ros.destroy_client(client)
    assert sum(f.done() for f in futures) == 200
    assert all(not f.result().success and "no learned example" in f.result().message for f in futures)


def test_diagnostics_keep_coming_with_sim_time_and_no_clock(ros, tmp_path):
    proc = start_node("guard_node", {**GUARD, "model_path": "", "use_sim_time": True}, tmp_path / "sim.log",
                      {"__node": "simtimeguard"})
    try:
        ros.wait_for(lambda: proc.poll() is not None or any("simtimeguard" in k for k in ros.diag), 90,
                     "/diagnostics from a guard on sim time with no /clock")
        assert proc.poll() is None
    finally:
        stop(proc)


def test_a_feedback_burst_reaches_a_counter(ros, guard, frames):
    """Sent while the guard is busy with frames: every message is learned, rejected or ignored, none lost."""
    keys = ("rejected_input.feedback", "learned", "feedback_ignored_learning_off")
    before = sum(int(diag(ros).get(k, 0)) for k in keys)
    n = 400
    for i in range(n):
        if i % 100 == 0:
            ros.send_frame(frames[0][i % 4].image, frames[0][i % 4].roi)
        ros.pub_feedback.publish(String(data=json.dumps({"decision_id": 10**9 + i, "label": "mug"})))  # expired
    ros.wait_for(lambda: sum(int(diag(ros).get(k, 0)) for k in keys) >= before + n, 30, f"{n} feedback counted")
    ros.spin_for(1.0)
    assert sum(int(diag(ros).get(k, 0)) for k in keys) == before + n


def test_teachers_are_named_asked_back_counted_and_forgotten(ros, guard, frames):
    """Labels carry a teacher; a held label is asked back (confirm query + crop); /diagnostics shows each teacher;
    ~/forget_teacher undoes one; bad names and bad settings are refused and change nothing."""
    d = ros.frame_and_decision(frames[2][1].image, frames[2][1].roi)
    rejected = int(diag(ros).get("rejected_input.feedback", 0))
    for bad in ("", "x" * 40, "a\u0007b", 5, None):  # JSON typed on the feedback topic
        ros.pub_feedback.publish(String(data=json.dumps({"decision_id": d["id"], "label": "teddy", "teacher": bad})))
    ros.wait_for(lambda: int(diag(ros).get("rejected_input.feedback", 0)) >= rejected + 5, 20, "bad names rejected")
    for bad in ("x" * 40, "a\u0007b", "   "):  # and by the teach service
        assert ros.teach("teddy", decision_id=d["id"], teacher=bad).outcome == "invalid"
    n = int(diag(ros)["examples"])
    assert not ros.set_param("guard_node", "screening_quarantine_at", 2.0)  # outside its range
    assert not ros.set_param("guard_node", "screening_refuse_at", 0.1)  # below quarantine_at: the on-set check
    assert ros.set_param("guard_node", "screening_quarantine_at", 0.0)  # every label is asked back
    queries = len(ros.msgs["teacher/query"])
    images = len(ros.msgs["teacher/query_image"])
    held = ros.teach("teddy", decision_id=d["id"], teacher="eve")
    assert held.outcome == "held" and held.query_id > 0 and held.journal_seq == 0, held.reason
    ros.wait_for(lambda: any(q["reason"] == "confirm" for q in ros.msgs["teacher/query"][queries:]),
                 10, "a confirm query")
    q = next(q for q in ros.msgs["teacher/query"][queries:] if q["reason"] == "confirm")
    assert (q["label"], q["teacher"], q["decision_id"], q["query_id"]) == ("teddy", "eve", d["id"], held.query_id)
    assert q["stamp"] == d["stamp"]  # stamped as the frame it is about
    ros.wait_for(lambda: len(ros.msgs["teacher/query_image"]) > images, 10, "the crop asked about")
    assert int(diag(ros)["examples"]) == n  # held, not learned
    assert ros.teach("UNKNOWN", query_id=q["query_id"], teacher="eve").outcome == "invalid"  # the question stays open
    res = ros.teach("teddy", query_id=q["query_id"], teacher="eve")
    assert res.outcome == "learned" and res.journal_seq > 0, res.reason
    ros.wait_for(lambda: any(m.teacher == "eve" and m.query_id == q["query_id"] and m.outcome == "learned"
                             for m in ros.msgs["teacher/labels"]), 10, "eve's label announced on teacher/labels")
    ros.wait_for(lambda: diag(ros).get("teacher.eve.examples") == "1", 10, "eve's label learned once confirmed")
    assert int(diag(ros)["examples"]) == n + 1 and float(diag(ros)["teacher.eve.trust"]) > 0
    assert ros.set_param("guard_node", "screening_quarantine_at", 0.25)

    res = ros.call(ForgetTeacher, "/guard_node/forget_teacher", ForgetTeacher.Request(teacher="nobody"))
    assert not res.success and "unknown teacher" in res.message
    res = ros.call(Forget, "/guard_node/forget", Forget.Request(decision_id=10**12))
    assert not res.success
    res = ros.call(ForgetTeacher, "/guard_node/forget_teacher", ForgetTeacher.Request(teacher="eve"))
    assert res.success and res.removed == 1 and "1 examples removed" in res.message, res.message
    ros.wait_for(lambda: int(diag(ros)["examples"]) == n and diag(ros).get("teacher.eve.examples") == "0", 10,
                 "eve's example gone")
    assert float(diag(ros)["teacher.eve.trust"]) < 0.01 and guard["proc"].poll() is None


def test_restart_reloads_what_was_taught(ros, guard, frames):
    ros.spin_for(0.5)
    classes = diag(ros)["classes"]
    stop(guard["proc"])
    ros.diag.clear()
    guard["proc"] = start_node("guard_node", {**GUARD, "model_path": str(guard["model"])}, guard["dir"] / "g2.log")
    wait_ready(ros, guard["proc"])
    ros.wait_for(lambda: diag(ros).get("classes") == classes, 20, "same classes after restart")
    assert diag(ros).get("teacher.eve.examples") == "0"  # the teachers' records came back too
    assert float(diag(ros)["teacher.eve.trust"]) < 0.01
    d = ros.frame_and_decision(frames[1][3].image, frames[1][3].roi)
    assert d["scores"]["duck"] == max(d["scores"].values())


def _side_by_side(parts):
    """Camera frames side by side as one frame, and each frame's object box in it: a scene with several objects."""
    side = parts[0].image.shape[1]
    return (np.concatenate([f.image for f in parts], axis=1),
            [(side * k + f.roi[0], f.roi[1], f.roi[2], f.roi[3]) for k, f in enumerate(parts)])


def test_every_region_of_a_frame_gets_a_decision(ros, guard, frames):
    """A RegionArray (a detector's output): the next frame's regions judged together, one DecisionArray with each
    region's decision (its id carried), no single `decision` for it; an empty array goes back to one region."""
    arrays: list = []
    sub = ros.create_subscription(messages.DecisionArray, "decisions", arrays.append, EVENT_QOS)
    pub = ros.create_publisher(messages.RegionArray, "regions", EVENT_QOS)
    try:
        ros.wait_for(lambda: sub.get_publisher_count() > 0 and pub.get_subscription_count() > 0, 30, "regions")
        ros.spin_for(0.5)
        parts = [frames[0][3], frames[1][3], frames[2][0]]
        image, boxes = _side_by_side(parts)
        pub.publish(messages.RegionArray(regions=[
            messages.Region(roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h), id=f"det{k}")
            for k, (x, y, w, h) in enumerate(boxes)]))
        ros.spin_for(0.1)
        singles = len(ros.msgs["decision"])
        ros.send_frame(image)
        ros.wait_for(lambda: arrays, 30, "a DecisionArray")
        arr = arrays[-1]
        assert arr.header.frame_id == "camera" and [d.region_id for d in arr.decisions] == ["det0", "det1", "det2"]
        assert [(d.roi.x_offset, d.roi.y_offset, d.roi.width, d.roi.height) for d in arr.decisions] == boxes
        assert len({d.id for d in arr.decisions}) == 3 and {d.roi_source for d in arr.decisions} == {"regions"}
        assert arr.decisions[0].scores[list(arr.decisions[0].class_names).index("mug")] == max(arr.decisions[0].scores)
        ros.spin_for(0.5)
        assert len(ros.msgs["decision"]) == singles  # several regions: only the array
        pub.publish(messages.RegionArray())  # cleared: one region again, on both topics
        ros.spin_for(0.1)
        d = ros.frame_and_decision(frames[1][3].image, frames[1][3].roi)
        ros.wait_for(lambda: arrays[-1].decisions[0].id == d["id"], 10, "the one-region array")
        assert len(arrays[-1].decisions) == 1
    finally:
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)


def _detections(vm, boxes, ids, header=None):
    """A vision_msgs Detection2DArray of (x, y, w, h) boxes, as a detector sends them: float centres and sizes."""
    out = []
    for (x, y, w, h), i in zip(boxes, ids, strict=True):
        d = vm.Detection2D(id=i)
        d.bbox.center.position.x, d.bbox.center.position.y = x + w / 2, y + h / 2
        d.bbox.size_x, d.bbox.size_y = float(w), float(h)
        out.append(d)
    return vm.Detection2DArray(header=header or Header(frame_id="camera"), detections=out)


def test_a_detectors_detection2darray_gets_one_decision_per_detection(ros, guard, frames):
    """vision_msgs' Detection2DArray on `detections`, taken like a RegionArray: the next frame's detections judged
    in one batch, one DecisionArray with each detection's id; a malformed message is refused, counted, and changes
    nothing. Skipped where vision_msgs is not installed (no wheel of it on PyPI)."""
    vm = pytest.importorskip("vision_msgs.msg",
                             reason="vision_msgs is not on PyPI (built from source, it runs: docs/ros-interface.md)")
    wait_ready(ros, guard["proc"])
    arrays: list = []
    sub = ros.create_subscription(messages.DecisionArray, "decisions", arrays.append, EVENT_QOS)
    pub = ros.create_publisher(vm.Detection2DArray, "detections", EVENT_QOS)
    try:
        ros.wait_for(lambda: sub.get_publisher_count() > 0 and pub.get_subscription_count() > 0, 30, "detections")
        ros.spin_for(0.5)
        parts = [frames[0][3], frames[1][3]]
        image, boxes = _side_by_side(parts)

        def judged(ids):
            n = len(arrays)
            pub.publish(_detections(vm, boxes, ids))
            ros.spin_for(0.1)
            ros.send_frame(image)
            ros.wait_for(lambda: len(arrays) > n, 30, "a DecisionArray")
            return arrays[-1]

        arr = judged(["cup-1", "duck-1"])
        assert len(arr.decisions) == 2 and [d.region_id for d in arr.decisions] == ["cup-1", "duck-1"]
        assert [(d.roi.x_offset, d.roi.y_offset, d.roi.width, d.roi.height) for d in arr.decisions] == boxes
        assert len({d.id for d in arr.decisions}) == 2 and {d.roi_source for d in arr.decisions} == {"regions"}
        before = int(diag(ros).get("rejected_input.detections", 0))
        pub.publish(_detections(vm, boxes, ["cup-2", "duck-2"]))
        bad = _detections(vm, boxes, ["cup-3", "nan"])
        bad.detections[1].bbox.size_x = float("nan")
        pub.publish(bad)  # refused whole: the regions stay those of the message before
        ros.spin_for(0.1)
        n = len(arrays)
        ros.send_frame(image)
        ros.wait_for(lambda: len(arrays) > n, 30, "a DecisionArray")
        assert [d.region_id for d in arrays[-1].decisions] == ["cup-2", "duck-2"]
        ros.wait_for(lambda: int(diag(ros).get("rejected_input.detections", 0)) == before + 1, 10, "the refusal")
        assert guard["proc"].poll() is None
        pub.publish(vm.Detection2DArray())  # cleared: one region again
        ros.spin_for(0.1)
        d = ros.frame_and_decision(frames[1][3].image, frames[1][3].roi)
        ros.wait_for(lambda: arrays[-1].decisions[0].id == d["id"], 10, "the one-region array")
    finally:
        ros.destroy_subscription(sub)
        ros.destroy_publisher(pub)


def test_without_vision_msgs_the_guard_says_detections_is_not_available(ros, guard):
    try:
        import vision_msgs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("vision_msgs is installed: the guard takes detections")
    wait_ready(ros, guard["proc"])
    logs = " ".join(p.read_text() for p in guard["dir"].glob("*.log"))
    assert "no `detections` (Detection2DArray) subscription" in logs


def test_attack_node_perturbs_within_its_bound(ros, guard, frames, tmp_path):
    proc = start_node("attack_node", {"model_path": str(guard["model"]), "attack": "paper", "eps": 300.0,
                                      "steps": 3, "enabled": False, "device": "cpu"}, tmp_path / "attack.log",
                      {"image_in": "camera_image_in", "image_out": "image_out"})
    pub = ros.create_publisher(Image, "camera_image_in", EVENT_QOS)
    try:
        f = frames[0][1]

        def roundtrip():
            n = len(ros.msgs["image_out"])
            ros.pub_roi.publish(RegionOfInterest(x_offset=f.roi[0], y_offset=f.roi[1], width=f.roi[2],
                                                 height=f.roi[3]))
            ros.spin_for(0.05)
            pub.publish(rgb_to_image(f.image))
            ros.wait_for(lambda: len(ros.msgs["image_out"]) > n, 60, "image_out")
            return image_to_rgb(ros.msgs["image_out"][-1])

        ros.wait_for(lambda: pub.get_subscription_count() > 0, 30, "attack node subscribed")
        ros.wait_matched("image_out", "attack_node")
        assert np.array_equal(roundtrip(), f.image)  # disabled: passed through untouched
        assert ros.set_bool("/attack_node/enable", True).success
        out = roundtrip()
        ros.wait_for(lambda: ros.msgs["attack/info"], 10, "attack/info")
        info = ros.msgs["attack/info"][-1]
        bx, by, bw, bh = info.box.x_offset, info.box.y_offset, info.box.width, info.box.height
        delta = out.astype(np.float32) - f.image.astype(np.float32)
        assert np.linalg.norm(delta) <= 300.0 + 1e-3  # the published uint8 frame itself is within the bound
        outside = delta.copy()
        outside[by : by + bh, bx : bx + bw] = 0
        assert np.abs(outside).max() == 0  # only the ROI box changes
        assert np.abs(delta).max() > 0
        norms = dict(zip(info.norm_names, info.norm_values, strict=True))
        assert info.attack == "paper" and info.label_before and info.label_after and info.attacked >= 1
        assert norms["l2"] <= 300.0 + 1e-3
        # every region of a frame (a RegionArray), each within its own budget; nothing outside them changes
        regions = ros.create_publisher(messages.RegionArray, "regions", EVENT_QOS)
        halves = [(4, 30, 20, 20), (70, 30, 20, 20)]  # two objects, far apart
        ros.wait_for(lambda: regions.get_subscription_count() > 0, 30, "the attack node's regions")
        regions.publish(messages.RegionArray(regions=[
            messages.Region(roi=RegionOfInterest(x_offset=x, y_offset=y, width=w, height=h)) for x, y, w, h in halves]))
        ros.spin_for(0.1)
        reports = len(ros.msgs["attack/info"])
        n = len(ros.msgs["image_out"])
        pub.publish(rgb_to_image(f.image))
        ros.wait_for(lambda: len(ros.msgs["image_out"]) > n, 60, "image_out")
        # the reports go out before the frame, but on another topic: one may be delivered after it
        ros.wait_for(lambda: len(ros.msgs["attack/info"]) >= reports + 2, 10, "a report per region")
        new = ros.msgs["attack/info"][reports:]
        boxes = [(r.box.x_offset, r.box.y_offset, r.box.width, r.box.height) for r in new]
        assert len(boxes) == 2 and all(bx <= x and x + w <= bx + bw for (x, _, w, _), (bx, _, bw, _)
                                       in zip(halves, boxes, strict=True))  # each region's (margined) box
        delta = image_to_rgb(ros.msgs["image_out"][-1]).astype(np.float32) - f.image.astype(np.float32)
        outside = delta.copy()
        for bx, by, bw, bh in boxes:
            assert np.linalg.norm(delta[by : by + bh, bx : bx + bw]) <= 300.0 + 1e-3
            outside[by : by + bh, bx : bx + bw] = 0
        assert np.abs(outside).max() == 0 and np.abs(delta).max() > 0
        regions.publish(messages.RegionArray())  # cleared: the roi again
        ros.spin_for(0.2)
        ros.destroy_publisher(regions)
        # a long attack must not block the enable service, and `enable false` stops it
        assert ros.set_param("attack_node", "norm", "linf")  # the paper's attack supports l∞
        assert not ros.set_param("attack_node", "attack", "fgv")  # fgv is l2 only: refused, nothing applied
        assert ros.set_param("attack_node", "norm", "")  # back to the attack's own default
        assert ros.set_param("attack_node", "attack", "cw")  # no early stop: 10,000 Adam steps take minutes
        assert ros.set_param("attack_node", "steps", 10000)
        n = len(ros.msgs["image_out"])
        pub.publish(rgb_to_image(f.image))
        ros.spin_for(2.0)  # the attack is running now (10,000 steps take minutes)
        t0 = time.monotonic()
        assert ros.set_bool("/attack_node/enable", False).success
        assert time.monotonic() - t0 < 3.0
        assert np.array_equal(roundtrip(), f.image)  # pass-through again: the running attack was stopped
        assert len(ros.msgs["image_out"]) == n + 1 and proc.poll() is None
    finally:
        stop(proc)


def test_teacher_oracle_and_malicious(ros, tmp_path):
    """The teacher reads the typed ground truth, questions and decisions, and answers by the guard's teach
    service (here a stand-in that records each request and answers "learned")."""
    gt_pub = ros.create_publisher(messages.GroundTruth, "ground_truth", EVENT_QOS)
    q_pub = ros.create_publisher(messages.Query, "teacher/query", EVENT_QOS)
    dec_pub = ros.create_publisher(messages.Decision, "decision", EVENT_QOS)
    taught: list = []

    def answer(req, resp):
        taught.append(req)
        resp.outcome, resp.reason = "learned", "stand-in"
        return resp

    srv = ros.create_service(Teach, "/standin_guard/teach", answer)
    results = {}

    def teacher_diag():
        return next((v for k, v in ros.diag.items() if "teacher_node" in k), {})

    def head(sec):
        return Header(stamp=Time(seconds=sec).to_msg(), frame_id="camera")

    try:
        for mode, flip in (("oracle", 0.0), ("malicious", 1.0)):
            for k in [k for k in ros.diag if "teacher_node" in k]:
                del ros.diag[k]
            proc = start_node("teacher_node", {"mode": mode, "flip_fraction": flip, "name": f"{mode}-1",
                                               "guard": "/standin_guard"}, tmp_path / f"{mode}.log")
            try:
                for pub in (q_pub, gt_pub, dec_pub):  # the harness subscribes to these topics too
                    ros.wait_subscribed(pub, "teacher_node", 30)
                ros.spin_for(1.0)  # its client discovers the service
                for i, label in enumerate(["mug", "duck", "mug"]):
                    gt_pub.publish(messages.GroundTruth(header=head(100 + i), label=label, frame=i))
                gt_pub.publish(messages.GroundTruth(header=head(1), label="bad\u0007label"))  # refused, counted
                ros.spin_for(0.3)
                n = len(taught)
                q_pub.publish(messages.Query(header=head(102), query_id=5, decision_id=3, reason="below_threshold"))
                ros.wait_for(lambda n=n: len(taught) > n, 15, f"{mode} answer")
                results[mode] = taught[-1]
                n = len(taught)  # a confirm question for another teacher is not answered
                q_pub.publish(messages.Query(header=head(102), query_id=6, reason="confirm", ask="someone-else"))
                ros.spin_for(1.0)
                assert len(taught) == n
                q_pub.publish(messages.Query(header=head(102), query_id=7, reason="confirm", ask=f"{mode}-1"))
                ros.wait_for(lambda n=n: len(taught) > n, 15, f"{mode} confirms")
                assert taught[-1].query_id == 7
                n = len(taught)  # an accepted wrong label is corrected by decision id
                dec_pub.publish(messages.Decision(header=head(101), id=9, label="mug", accepted=True,
                                                  reason="accepted"))
                ros.wait_for(lambda n=n: len(taught) > n, 15, f"{mode} corrects")
                assert (taught[-1].decision_id, taught[-1].query_id) == (9, 0)
                assert proc.poll() is None
                ros.wait_for(lambda: teacher_diag().get("outcome.learned") == "3", 10, "the outcomes counted")
                assert int(teacher_diag().get("rejected_input.ground_truth", 0)) == 1
                assert teacher_diag().get("callback_errors", "0") == "0"
                # the teacher times no frames: its timings say so instead of "nan"; the message carries a real stamp
                assert teacher_diag()["rate_hz"] == teacher_diag()["latency_ms_p50"] == "no data"
                stamp = next(v for k, v in ros.diag_stamps.items() if "teacher_node" in k)
                assert abs(stamp - time.time()) < 60
            finally:
                stop(proc)
    finally:
        ros.destroy_service(srv)
    ros.msgs["ground_truth"].clear()  # what this test published there
    assert (results["oracle"].query_id, results["oracle"].label, results["oracle"].teacher) == (5, "mug", "oracle-1")
    assert (results["malicious"].query_id, results["malicious"].label) == (5, "duck")
    assert results["malicious"].teacher == "malicious-1"


def test_sim_camera_publishes_frames_roi_and_truth(ros, tmp_path):
    proc = start_node("sim_camera_node", {"rate": 10.0, "image_size": 64, "switch_period": 0.3},
                      tmp_path / "cam.log", {"image": "camera_image"})
    try:
        t0 = time.monotonic()
        ros.wait_for(lambda: len(ros.msgs["camera_image"]) >= 10, 60, "10 camera frames")
        dt = time.monotonic() - t0
        img = ros.msgs["camera_image"][-1]
        assert (img.width, img.height, img.encoding) == (64, 64, "rgb8")
        truths = {m.label for m in ros.msgs["ground_truth"]}
        assert len(truths) >= 2  # the object changes
        assert dt < 30
    finally:
        stop(proc)
        ros.spin_for(0.5)  # what it sent before it stopped, then gone: the next test's camera labels its own frames
        ros.msgs["ground_truth"].clear()


def test_sim_camera_reads_an_image_folder(ros, tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for cls in ("cup1", "cup2"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(2):
            cv2.imwrite(str(tmp_path / "data" / cls / f"{i}.png"), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    n = len(ros.msgs["camera_image"])
    proc = start_node("sim_camera_node", {"source": "folder", "path": str(tmp_path / "data"), "rate": 20.0,
                                          "switch_period": 0.1}, tmp_path / "cam.log", {"image": "camera_image"})
    try:
        ros.wait_for(lambda: len(ros.msgs["camera_image"]) >= n + 10, 60, "folder frames")
        img = ros.msgs["camera_image"][-1]
        assert (img.width, img.height) == (40, 30)
        recent = {m.label for m in ros.msgs["ground_truth"][-10:]}
        assert recent <= {"cup1", "cup2"} and len(recent) == 2
    finally:
        stop(proc)
    bad = start_node("sim_camera_node", {"source": "folder", "path": str(tmp_path / "nowhere")}, tmp_path / "bad.log")
    assert bad.wait(timeout=60) == 2  # a clear configuration error, not a crash
    assert "no images under" in (tmp_path / "bad.log").read_text()


def test_sim_camera_plays_a_video_in_a_loop(ros, tmp_path):
    import cv2

    path = tmp_path / "cup.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (40, 30))
    for i in range(3):
        w.write(np.full((30, 40, 3), 60 * i, np.uint8))
    w.release()
    n = len(ros.msgs["camera_image"])
    proc = start_node("sim_camera_node", {"source": "video", "path": str(path), "rate": 20.0}, tmp_path / "v.log",
                      {"image": "camera_image"})
    try:
        ros.wait_for(lambda: len(ros.msgs["camera_image"]) >= n + 8, 60, "video frames (more than the file has)")
        assert (ros.msgs["camera_image"][-1].width, ros.msgs["camera_image"][-1].height) == (40, 30)
        assert ros.msgs["ground_truth"][-1].label == "cup"  # the file name
    finally:
        stop(proc)


def test_guard_keeps_a_loaded_models_calibrated_thresholds(ros, frames, tmp_path):
    """A model calibrated offline (icub-guard train --calibrate) keeps its thresholds in the node."""
    from icub_guard.core import Recognizer, RecognizerConfig

    rec = Recognizer(RecognizerConfig(weights="random", input_size=64, crop_size=48, device="cpu"))
    crops = [rec.crop(f.image, f.roi)[0] for k in (0, 1) for f in frames[k]]
    rec.fit(np.stack(crops), ["mug"] * 4 + ["duck"] * 4)
    wanted = {"mug": 0.125, "duck": -0.25}
    rec.set_thresholds([wanted[c] for c in rec.classes])
    path = rec.save(tmp_path / "calibrated.npz")
    proc = start_node("guard_node", {**GUARD, "model_path": str(path), "autosave": False}, tmp_path / "g.log",
                      {"decision": "calibrated/decision"})
    sub = ros.create_subscription(messages.Decision, "calibrated/decision",
                                  lambda m: ros.msgs["calibrated"].append(messages.decision_body(m)), EVENT_QOS)
    try:
        ros.wait_for(lambda: sub.get_publisher_count() > 0, 60, "the calibrated guard")
        end = time.monotonic() + 30
        while not ros.msgs["calibrated"] and time.monotonic() < end:  # resent until the new guard has subscribed
            ros.send_frame(frames[0][0].image, frames[0][0].roi)
            ros.spin_for(1.0)
        ros.wait_for(lambda: ros.msgs["calibrated"], 5, "a decision")
        assert ros.msgs["calibrated"][-1]["thresholds"] == wanted  # not the node's threshold parameter (0)
    finally:
        stop(proc)
        ros.destroy_subscription(sub)


def decide(ros, pub_img, decisions: list, image, tries: int = 10) -> dict:
    """Publish a frame (best effort: re-sent if it was dropped) until the guard decides about it.

    After a SIGKILL, DDS may still match the dead process for a while (and a loaded machine discovers
    slowly), so it tries for up to a minute; it returns at the first decision."""
    ros.wait_for(lambda: pub_img.get_subscription_count() > 0, 60, "the guard's image subscription")
    n = len(decisions)
    for _ in range(tries):
        pub_img.publish(rgb_to_image(image, ros.get_clock().now().to_msg(), "camera"))
        end = time.monotonic() + 6.0
        while time.monotonic() < end and len(decisions) == n:
            rclpy.spin_once(ros, timeout_sec=0.05)
        if len(decisions) > n:
            return decisions[-1]
    raise AssertionError(f"no decision after {tries} frames")


def test_acknowledged_labels_survive_kill_9(ros, frames, tmp_path):
    """A label counts as acknowledged once /diagnostics shows it; a SIGKILL right then loses none.

    autosave is off in the first life, so no snapshot exists: only the journal can bring the labels back
    (before the journal, a SIGKILL lost whatever the background save had not written yet).
    """
    import signal

    model = tmp_path / "kill.npz"
    pub_img = ros.create_publisher(Image, "/killtest/image", FRAME_QOS)
    decisions: list[dict] = []
    sub = ros.create_subscription(messages.Decision, "/killtest/decision",
                                  lambda m: decisions.append(messages.decision_body(m)), EVENT_QOS)

    def kill_diag():
        return ros.diag.get("killguard: recognition", {})

    def life(i, autosave):
        ros.diag.pop("killguard: recognition", None)
        return start_node("guard_node", {**GUARD, "model_path": str(model), "autosave": autosave},
                          tmp_path / f"life{i}.log", {"__node": "killguard", "__ns": "/killtest"})

    acked = 0
    try:
        for i, autosave in enumerate((False, True)):
            proc = life(i, autosave)
            ros.wait_for(lambda p=proc: kill_diag() or p.poll() is not None, 60, "killguard")
            assert int(kill_diag()["examples"]) == acked  # everything acknowledged before the kill is back
            ros.wait_for(lambda: sub.get_publisher_count() > 0, 30, "the guard's decisions")
            for k, label in ((0, "mug"), (1, "duck"), (0, "mug"), (1, "duck"), (2, "teddy")):
                d = decide(ros, pub_img, decisions, frames[k][len(decisions) % 4].image)
                res = ros.teach(label, decision_id=d["id"], node="/killtest/killguard")
                assert res.outcome == "learned" and res.journal_seq > 0, res.reason  # the acknowledgement
            proc.send_signal(signal.SIGKILL)  # at once, right after the last acknowledgement: no flush, no snapshot
            proc.wait(timeout=10)
            acked += 5
        proc = life(2, True)
        ros.wait_for(lambda: kill_diag() or proc.poll() is not None, 60, "killguard after the last kill")
        assert int(kill_diag()["examples"]) == acked
        stop(proc)
        stale = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
        assert not stale, stale
    finally:
        ros.destroy_subscription(sub)


def test_the_guard_refuses_an_unreadable_model_file(ros, tmp_path):
    model = tmp_path / "broken.npz"
    model.write_bytes(b"PK\x03\x04 not really a model")
    proc = start_node("guard_node", {**GUARD, "model_path": str(model)}, tmp_path / "broken.log",
                      {"__node": "brokenguard"})
    assert proc.wait(timeout=90) == 2  # a start-up error, with its reason
    assert "broken.npz" in (tmp_path / "broken.log").read_text()
    assert model.read_bytes() == b"PK\x03\x04 not really a model"


def test_a_damaged_journal_stops_the_guard_until_recovery_is_asked_for(ros, tmp_path):
    from icub_guard.core.journal import LabelJournal

    model, log = tmp_path / "m.npz", tmp_path / "damaged.log"
    journal = LabelJournal.beside(model)
    journal.open()
    rng, offsets = np.random.default_rng(0), []
    for i in range(6):
        offsets.append(journal.path.stat().st_size)
        journal.append(rng.normal(size=(1, 4096)).astype(np.float32), ("mug", "duck")[i % 2])
    journal.close()
    damaged = bytearray(journal.path.read_bytes())
    damaged[offsets[2] + 40] ^= 0xFF  # a flipped byte in record 3, at rest
    journal.path.write_bytes(bytes(damaged))
    proc = start_node("guard_node", {**GUARD, "model_path": str(model)}, log, {"__node": "damagedguard"})
    assert proc.wait(timeout=90) == 2  # a start-up error, with its reason, and nothing touched
    assert "is damaged" in log.read_text() and "recover_journal" in log.read_text()
    assert journal.path.read_bytes() == bytes(damaged) and not model.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([log.name, journal.path.name])

    proc = start_node("guard_node", {**GUARD, "model_path": str(model), "recover_journal": True},
                      tmp_path / "recovered.log", {"__node": "recoveredguard"})
    try:
        end = time.monotonic() + 90
        while "label journal recovered" not in (tmp_path / "recovered.log").read_text() and time.monotonic() < end:
            assert proc.poll() is None, (tmp_path / "recovered.log").read_text()
            time.sleep(0.3)
        text = (tmp_path / "recovered.log").read_text()
        assert "5 records kept, records 3 lost" in text and "2 classes, 5 examples" in text
        aside = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
        assert len(aside) == 1 and aside[0].read_bytes() == bytes(damaged)  # the evidence, kept aside
    finally:
        stop(proc)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signals_stop_the_guard_fast_and_clean(ros, frames, tmp_path, sig):
    """Ctrl-C (SIGINT) or SIGTERM: exit 0 within 2 s, no traceback, and the final snapshot holds every label.

    Before: 9-13 s under launch, which escalated to SIGKILL and lost the final flush.
    """
    import signal

    from icub_guard.core import persistence
    from icub_guard.core.journal import LabelJournal

    model = tmp_path / "stop.npz"
    name, ns = f"stopguard_{sig.lower()}", f"/stoptest_{sig.lower()}"  # nothing shared with the other run
    proc = start_node("guard_node", {**GUARD, "model_path": str(model)}, tmp_path / "stop.log",
                      {"__node": name, "__ns": ns})
    pub_img = ros.create_publisher(Image, f"{ns}/image", FRAME_QOS)
    pub_fb = ros.create_publisher(String, f"{ns}/teacher/feedback", FEEDBACK_QOS)  # a person's plain labels
    decisions: list[dict] = []
    sub = ros.create_subscription(messages.Decision, f"{ns}/decision",
                                  lambda m: decisions.append(messages.decision_body(m)), EVENT_QOS)
    try:
        ros.wait_for(lambda: sub.get_publisher_count() > 0 and pub_fb.get_subscription_count() > 0, 60, "stopguard")
        for k, label in ((0, "mug"), (1, "duck"), (0, "mug")):
            d = decide(ros, pub_img, decisions, frames[k][len(decisions) % 4].image)
            pub_fb.publish(String(data=json.dumps({"decision_id": d["id"], "label": label})))
        ros.wait_for(lambda: ros.diag.get(f"{name}: recognition", {}).get("examples") == "3", 20, "3 labels")
        t0 = time.monotonic()
        proc.send_signal(getattr(signal, sig))
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 <= 2.0
        log = (tmp_path / "stop.log").read_text()
        assert "Traceback" not in log and "KeyboardInterrupt" not in log, log[-2000:]
        assert persistence.load(model).meta["journal_seq"] == 3  # the final snapshot holds all three labels
        assert list(LabelJournal.beside(model).entries()) == []  # and the journal was compacted
    finally:
        stop(proc)
        ros.destroy_subscription(sub)


def test_a_second_ctrl_c_does_not_cut_the_clean_up_short():
    """Ctrl-C in a terminal reaches a node under ros2 launch twice: the terminal's (the whole process group) and
    launch's forwarded copy. Before: the second one, arriving in destroy_node, ended the node with a
    KeyboardInterrupt traceback and exit code -2 (the model flush and clean-up cut short)."""
    import signal
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import os, signal, threading, time
        from rclpy.node import Node
        from icub_guard.ros.common import run_node

        class Node2(Node):
            def __init__(self):
                super().__init__("double_sigint")
                threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # the terminal's Ctrl-C

            def destroy_node(self):
                os.kill(os.getpid(), signal.SIGINT)  # launch's copy, in the clean-up
                time.sleep(0.2)
                print("cleaned up", flush=True)
                return super().destroy_node()

        raise SystemExit(run_node(Node2))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert r.returncode == 0 and "cleaned up" in r.stdout, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]


def test_qos_of_the_image_subscription_is_a_parameter(ros, tmp_path):
    from rclpy.qos import ReliabilityPolicy

    proc = start_node("guard_node", {**GUARD, "model_path": "", "image_qos_reliability": "reliable",
                                     "image_qos_depth": 5}, tmp_path / "qos.log", {"__node": "qosguard",
                                                                                    "__ns": "/qostest"})
    try:
        ros.wait_for(lambda: ros.get_subscriptions_info_by_topic("/qostest/image"), 60, "qosguard's subscription")
        q = ros.get_subscriptions_info_by_topic("/qostest/image")[0].qos_profile
        assert q.reliability == ReliabilityPolicy.RELIABLE  # (DDS discovery does not carry the depth)
    finally:
        stop(proc)
    bad = start_node("guard_node", {**GUARD, "model_path": "", "image_qos_reliability": "sometimes"},
                     tmp_path / "badqos.log", {"__node": "badqos"})
    assert bad.wait(timeout=90) == 2 and "reliability" in (tmp_path / "badqos.log").read_text()


@pytest.mark.parametrize("value,why", [(50.0, "out of range"), ("high", "expecting type 'DOUBLE'")])
def test_a_bad_float_at_start_up_is_a_configuration_error(ros, tmp_path, value, why):
    """A typed, ranged float parameter given a bad start-up value: exit 2 with the reason, not a traceback."""
    log = tmp_path / "badfloat.log"
    proc = start_node("guard_node", {**GUARD, "model_path": "", "threshold": value}, log, {"__node": "badfloat"})
    assert proc.wait(timeout=90) == 2
    text = log.read_text()
    assert "parameter threshold" in text and why in text and "Traceback" not in text


def test_a_compressed_camera_is_decoded_and_bad_data_counted(ros, frames, tmp_path):
    """image_transport compressed: JPEG and PNG frames on image/compressed are judged, stamped like the frame;
    malformed data is refused and counted like a bad raw frame."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    proc = start_node("guard_node", {**GUARD, "model_path": "", "image_transport": "compressed"},
                      tmp_path / "jpeg.log", {"__node": "jpegguard", "__ns": "/jpegtest"})
    pub = ros.create_publisher(CompressedImage, "/jpegtest/image/compressed", FRAME_QOS)
    decisions: list[dict] = []
    sub = ros.create_subscription(messages.Decision, "/jpegtest/decision",
                                  lambda m: decisions.append(messages.decision_body(m)), EVENT_QOS)

    def jpeg_diag():
        return ros.diag.get("jpegguard: recognition", {})

    try:
        ros.wait_for(lambda: pub.get_subscription_count() > 0 and sub.get_publisher_count() > 0, 60, "jpegguard")
        rgb = frames[0][0].image
        for n, ext in enumerate((".jpg", ".png")):
            _, buf = cv2.imencode(ext, rgb[:, :, ::-1])
            stamp = Time(seconds=500 + n).to_msg()
            for _ in range(10):  # best effort: re-sent until judged
                pub.publish(CompressedImage(header=Header(stamp=stamp, frame_id="cam_jpeg"), format=ext[1:],
                                            data=buf.tobytes()))
                end = time.monotonic() + 3
                while time.monotonic() < end and len(decisions) <= n:
                    rclpy.spin_once(ros, timeout_sec=0.05)
                if len(decisions) > n:
                    break
            d = decisions[n]
            assert d["frame_id"] == "cam_jpeg" and d["stamp"] == {"sec": 500 + n, "nanosec": 0}
            assert d["roi"][2:] == [rgb.shape[1], rgb.shape[0]]  # the whole decoded frame (roi_mode full)
        for data in (b"", b"not an image", buf.tobytes()[:40]):
            pub.publish(CompressedImage(format="png", data=data))
            ros.spin_for(0.1)
        ros.wait_for(lambda: int(jpeg_diag().get("rejected_input.image", 0)) >= 2, 15, "bad data counted")
        assert proc.poll() is None and jpeg_diag().get("callback_errors", "0") == "0"
    finally:
        stop(proc)
        ros.destroy_subscription(sub)
