"""Robot recordings as data: `icub-guard record` writes an MCAP file that ROS and this package read, it is a
dataset for the evaluations, damaged files are refused with the reason, and it replays into a running guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from icub_guard.cli import main
from icub_guard.core.errors import InputError, RecordingError
from icub_guard.recordings.dataset import RecordingSpec, with_options
from icub_guard.recordings.frames import read_frames
from icub_guard.recordings.reader import MessageDecoder, iter_messages, topic_summary
from icub_guard.recordings.topics import Topics
from icub_guard.sim.datasets import check_dataset, load_dataset
from icub_guard.sim.teaching import stream_frames

from ros_harness import ROOT

SMALL = ["--weights", "random", "--input-size", "64", "--device", "cpu"]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """SimWorld7, 2 rounds × 7 objects × 5 frames: 70 frames, seeded."""
    path = tmp_path_factory.mktemp("rec") / "sim.mcap"
    assert main(["-q", "record", str(path), "--rounds", "2", "--frames-per-object", "5", "--seed", "3"]) == 0
    return path


@pytest.fixture(scope="module")
def model(recording, tmp_path_factory):
    """A model trained on the recording's train split through the CLI (`train --dataset bag:FILE`)."""
    out = tmp_path_factory.mktemp("model") / "m.npz"
    assert main(["-q", "train", *SMALL, "--dataset", f"bag:{recording}", "--n-per-class", "6", "--calibrate", "0",
                 "--out", str(out)]) == 0
    return out


def test_record_writes_the_camera_topics_as_ros2_messages(recording, capsys):
    assert not recording.with_name(recording.name + ".partial").exists()
    t = Topics.defaults()
    assert topic_summary(recording) == {t.image: ("sensor_msgs/msg/Image", 70), t.roi: (
        "sensor_msgs/msg/RegionOfInterest", 70), t.label: ("icub_guard_msgs/msg/GroundTruth", 70)}
    # the pixels are the simulator's (seeded), and rclpy's own deserialiser reads the same message
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    frames = read_frames(recording, t)
    expected = [f for _, f in stream_frames("7", 2, 5, seed=3)]
    assert [f.label for f in frames] == [f.label for f in expected]
    assert all(np.array_equal(a.image, b.image) and a.roi == tuple(b.roi) for a, b in zip(frames, expected))
    raw = next(iter_messages(recording, [t.image]))
    ros = deserialize_message(raw.data, Image)
    assert (ros.encoding, ros.height, ros.width) == ("rgb8", 128, 128)
    # the ground truth is the camera node's typed GroundTruth, stamped like its image, as rclpy reads it
    from icub_guard_msgs.msg import GroundTruth

    truth = deserialize_message(next(iter_messages(recording, [t.label])).data, GroundTruth)
    assert (truth.label, truth.frame, truth.header.stamp.sec, truth.header.stamp.nanosec) == (
        expected[0].label, 0, ros.header.stamp.sec, ros.header.stamp.nanosec)
    assert bytes(ros.data) == frames[0].image.tobytes()
    assert MessageDecoder(recording)(raw).header.frame_id == ros.header.frame_id == "camera"
    # what rosbag2's MCAP plugin and Foxglove look for: the ros2 profile, a summary with statistics, cdr + ros2msg
    from mcap.reader import make_reader

    with open(recording, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert reader.get_header().profile == "ros2" and summary.statistics.message_count == 210
        assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
        assert {sc.encoding for sc in summary.schemas.values()} == {"ros2msg"}


def test_record_can_add_a_guards_decisions(model, tmp_path):
    out = tmp_path / "with_decisions.mcap"
    assert main(["-q", "record", str(out), "--rounds", "1", "--frames-per-object", "1", "--decisions", str(model)]) == 0
    t = Topics.defaults()
    decode = MessageDecoder(out)
    assert topic_summary(out)[t.decision] == ("icub_guard_msgs/msg/Decision", 7)  # what guard_node publishes
    decisions = [decode(m) for m in iter_messages(out, [t.decision])]
    truth = [decode(m) for m in iter_messages(out, [t.label])]
    assert len(decisions) == len(truth) == 7
    assert all(d.roi_source == "topic" and d.roi.width > 0 and d.id > 0 for d in decisions)
    assert all(d.label == "unknown" or d.label in d.class_names for d in decisions)
    assert all(len(d.scores) == len(d.thresholds) == len(d.class_names) == 7 for d in decisions)
    stamp = [(m.header.stamp.sec, m.header.stamp.nanosec) for m in decisions]
    assert stamp == [(g.header.stamp.sec, g.header.stamp.nanosec) for g in truth]  # each about its frame
    # rclpy reads the same bytes as the message guard_node publishes
    from icub_guard_msgs.msg import Decision
    from rclpy.serialization import deserialize_message

    first = deserialize_message(next(iter_messages(out, [t.decision])).data, Decision)
    assert (first.id, first.label, list(first.class_names)) == (decisions[0].id, decisions[0].label,
                                                                 list(decisions[0].class_names))
    assert main(["-q", "record", str(out), "--decisions", str(tmp_path / "none.npz")]) == 2  # a clear error


def test_the_recordings_message_definitions_are_the_interface_packages(tmp_path):
    """A recording carries icub_guard_msgs' definitions (what `ros2 bag info` and Foxglove decode with): they must
    say what icub_guard_msgs/msg/*.msg say, or the bytes would not be the live graph's messages."""
    from icub_guard.recordings import schemas

    for name in ("GroundTruth", "Decision", "AttackReport"):
        lines = [" ".join(ln.split("#", 1)[0].split()) for ln in (ROOT / "icub_guard_msgs" / "msg" /
                                                                  f"{name}.msg").read_text().splitlines()]
        own = schemas.DEFINITIONS[f"icub_guard_msgs/msg/{name}"].split("=" * 80)[0]
        assert own.splitlines() == [ln for ln in lines if ln], name


def test_a_robots_string_ground_truth_is_read_too(tmp_path):
    """A robot's recorder may publish labels as std_msgs/String: a bare label, or JSON {"label", "stamp"} (matched
    to the image with that stamp), else the latest label before an image goes with it."""
    from icub_guard.recordings.writer import RecordingWriter, stamp_of

    rgb = np.zeros((32, 32, 3), np.uint8)
    path = tmp_path / "robot.mcap"
    with RecordingWriter(path) as w:
        w.string(w.topics.label, "mug", 1_000)
        w.image(rgb, 1_000)
        w.string(w.topics.label, json.dumps({"label": "duck", "stamp": stamp_of(3_000)}), 2_000)
        w.string(w.topics.label, "teddy", 2_500)  # the latest before the next image, but not its stamp's
        w.image(rgb, 3_000)
        w.image(rgb, 4_000)
    assert [f.label for f in read_frames(path, Topics.defaults())] == ["mug", "duck", "teddy"]


def test_the_open_set_evaluation_takes_a_recording(tmp_path, capsys):
    """`evaluate-openset --dataset bag:FILE`: the taught classes are some of the recording's, the rest are the
    untaught ones (no look-alike set: that is SimWorld28's); a taught class the recording lacks is refused naming
    its classes."""
    rec = tmp_path / "three.mcap"
    assert main(["-q", "record", str(rec), "--rounds", "3", "--frames-per-object", "10", "--seed", "5"]) == 0
    args = ["-q", "evaluate-openset", "--dataset", f"bag:{rec}", "--weights", "random", "--backbone", "resnet18",
            "--input-size", "32", "--n-train", "18", "--n-val", "6", "--n-test", "6", "--n-far", "6", "--n-adv", "1",
            "--d-max", "0", "2000", "--fmn-steps", "3", "--recognition-train", "0", "--analysis-n", "0",
            "--device", "cpu", "--out", str(tmp_path / "out")]
    assert main([*args, "--taught", "mug", "duck", "teddy"]) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["config"]["untaught"] == ["domino", "jenga", "lego", "soccerball"]
    (column,) = res["backbones"].values()
    assert set(column["ood"]) == {"untaught", "noise", "blank", "textures", "dead-leaves"}
    assert len(column["adversarial_still_rejected"]) == 2
    assert f"Data: bag:{rec}" in (tmp_path / "out" / "report.md").read_text()
    capsys.readouterr()
    assert main([*args, "--taught", "mug", "spoon"]) == 2
    err = capsys.readouterr().err
    assert "has the classes ['domino', 'duck', 'jenga', 'lego', 'mug', 'soccerball', 'teddy']" in err


def test_a_recording_is_a_dataset_split_by_time(recording):
    spec = f"bag:{recording}"
    splits = {s: load_dataset(spec, s, 100) for s in ("train", "val", "test")}
    assert [len(d) for d in splits.values()] == [42, 14, 14]  # 10 frames a class: 6 / 2 / 2
    assert all(d.classes == splits["train"].classes and len(d.classes) == 7 for d in splits.values())
    assert splits["train"].images.shape[1:] == (64, 64, 3)
    small = load_dataset(spec, "train", 3)
    assert len(small) == 21 and not any((small.images[i] == splits["test"].images).all(axis=(1, 2, 3)).any()
                                        for i in range(len(small)))  # no test crop among the training ones
    # topic options travel inside the spec string (the one thing a sweep passes)
    s = with_options(spec, image="/cam", labels="/tmp/l")
    assert RecordingSpec.parse(s) == RecordingSpec(recording, Topics.defaults().with_names(image="/cam"),
                                                   RecordingSpec.parse(s).labels)
    assert RecordingSpec.parse(s).text() == s
    with pytest.raises(InputError, match="unknown option"):
        RecordingSpec.parse(f"{spec}?imagetopic=/x")


def test_a_rosbag2_folder_is_read_as_its_mcap_files(recording, tmp_path):
    """`ros2 bag record -s mcap` writes a folder (metadata.yaml + NAME_0.mcap, split files _1, _2 ...)."""
    (tmp_path / "metadata.yaml").write_text("rosbag2_bagfile_information: {}\n")
    (tmp_path / "bag_0.mcap").write_bytes(recording.read_bytes())
    (tmp_path / "bag_1.mcap").write_bytes(recording.read_bytes())
    frames = read_frames(tmp_path, Topics.defaults())
    assert len(frames) == 140 and [f.index for f in frames] == list(range(140))
    assert len(load_dataset(f"bag:{tmp_path}", "train", 100)) == 7 * 12
    (tmp_path / "bag_0.mcap").unlink()
    (tmp_path / "bag_1.mcap").unlink()
    with pytest.raises(RecordingError, match=r"holds no \.mcap file"):
        read_frames(tmp_path, Topics.defaults())


def test_labels_can_come_from_a_folder_naming_frames(recording, tmp_path):
    for frame in range(12):  # a person sorted the first 12 frames into two folders
        label = "left" if frame % 2 else "right"
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / f"{frame:06d}.png").write_bytes(b"")
    d = load_dataset(f"bag:{recording}?labels={tmp_path}", "live", 100)
    assert len(d) == 12 and d.classes == ["left", "right"]
    (tmp_path / "left" / "frame_x.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"frame_x\.png is not named by a frame number"):
        load_dataset(f"bag:{recording}?labels={tmp_path}", "live", 100)


def test_evaluate_runs_on_a_recording_labelled_by_a_folder(recording, tmp_path, capsys):
    """The smallest evaluation the CLI allows, on two objects a person labelled by sorting frames into folders."""
    labels = tmp_path / "labels"
    for f in read_frames(recording, Topics.defaults()):
        if f.label in ("mug", "duck"):
            (labels / f.label).mkdir(parents=True, exist_ok=True)
            (labels / f.label / f"{f.index:06d}.png").write_bytes(b"")
    rc = main(["-q", "evaluate", *SMALL, "--dataset", f"bag:{recording}", "--labels", str(labels), "--n-train", "6",
               "--n-val", "2", "--n-test", "1", "--d-max", "0", "2000", "--fmn-steps", "1", "--steps", "1",
               "--no-adaptive", "--ensemble-steps", "0", "--binarization", "0", "--square-queries", "0",
               "--out", str(tmp_path / "out")])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert res["config"]["dataset"] == f"bag:{recording}?labels={labels}"
    assert res["accuracy"]["generic"]["svm"][0] >= 0.5  # two held-out crops of two classes, recognised clean


def _damage(src, dst, how):
    data = bytearray(src.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "corrupt":  # flip bytes inside the first chunk's compressed frames
        data[4000:4064] = bytes(b ^ 0xFF for b in data[4000:4064])
    else:  # a ROS 1 bag is no MCAP file
        data = bytearray(b"#ROSBAG V2.0\n" + bytes(200))
    dst.write_bytes(bytes(data))
    return dst


@pytest.mark.parametrize(("how", "reason"), [
    ("truncated", r"is truncated \(after message \d+ at byte \d+ of \d+\): the file ends inside a record"),
    ("corrupt", r"is corrupt \(after message \d+ at byte \d+ of \d+\): CRCValidationError"),
    ("not_mcap", r"is not an MCAP file")])
def test_damaged_recordings_are_refused_naming_the_file_and_the_message(recording, tmp_path, how, reason, capsys):
    bad = _damage(recording, tmp_path / f"{how}.mcap", how)
    with pytest.raises(RecordingError, match=rf"recording {bad} {reason}"):
        read_frames(bad, Topics.defaults())
    assert main(["-q", "train", *SMALL, "--dataset", f"bag:{bad}", "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert f"recording {bad} is" in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()


def test_missing_topics_and_files_are_named(recording, tmp_path, capsys):
    assert main(["-q", "train", *SMALL, "--dataset", f"bag:{recording}", "--image-topic", "/nope",
                 "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "no images on /nope" in err and "/camera/image (sensor_msgs/msg/Image, 70)" in err
    assert main(["-q", "train", "--dataset", f"bag:{tmp_path}/none.mcap"]) == 2
    assert "none.mcap does not exist" in capsys.readouterr().err
    assert main(["-q", "train", "--image-topic", "/x"]) == 2  # a recording's option without a recording
    assert "apply to --dataset bag:FILE" in capsys.readouterr().err
    assert main(["-q", "evaluate", "--dataset", f"bag:{recording}", "--labels", str(tmp_path / "no")]) == 2
    assert f"label folder {tmp_path / 'no'} does not exist" in capsys.readouterr().err
    assert check_dataset(f"bag:{recording}") == f"bag:{recording}"


# ---------------------------------------------------------------- ROS processes
@pytest.fixture(scope="module")
def ros():
    import rclpy

    from ros_harness import Harness

    rclpy.init()
    h = Harness("recordings_harness")
    yield h
    h.destroy_node()
    rclpy.shutdown()


def test_replay_feeds_a_running_guard_as_fast_as_it_decides(ros, recording, model, tmp_path):
    from ros_harness import start_node, stop

    guard = start_node("guard_node", {"weights": "random", "input_size": 64, "device": "cpu",
                                      "model_path": str(model), "diagnostics_period": 0.3, "query_rate_limit": 100.0},
                       tmp_path / "guard.log", {"image": Topics.defaults().image})
    try:
        ros.wait_for(lambda: guard.poll() is not None or any("guard_node" in k for k in ros.diag), 60, "guard_node")
        assert guard.poll() is None, (tmp_path / "guard.log").read_text()
        ros.wait_matched("decision", "guard_node")
        n0 = len(ros.decisions())
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        replay = subprocess.Popen([sys.executable, "-m", "icub_guard.cli", "replay", str(recording),
                                   "--as-fast-as-guard", "--decision-timeout", "10"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ros.wait_for(lambda: replay.poll() is not None, 120, "the replay to end")
        out = replay.stdout.read()
        assert replay.returncode == 0, out
        assert "replayed 70 frames" in out and "70 decisions, 0 timeouts" in out, out
        ros.spin_for(0.3)
        decisions = ros.decisions()[n0:]
        assert len(decisions) == 70
        # the recorded regions reach the guard too (on their own reliable topic: under heavy load a region can
        # arrive after its frame, which the guard then crops by its roi_mode)
        on_region = sum(d["roi_source"] == "topic" for d in decisions)
        assert on_region >= 0.8 * len(decisions), on_region
        truth = [f.label for f in read_frames(recording, Topics.defaults())]
        right = sum(d["label"] == t for d, t in zip(decisions, truth))
        assert right > 70 / 7  # the guard recognises the robot's own recording above chance
    finally:
        stop(guard)


def test_replay_keeps_the_recorded_pace_scaled_by_rate(ros, tmp_path):
    import time

    from icub_guard.ros import messages
    from icub_guard.ros.common import EVENT_QOS

    short = tmp_path / "short.mcap"  # 7 frames at 5 Hz: 1.2 s from the first to the last
    assert main(["-q", "record", str(short), "--rounds", "1", "--frames-per-object", "1"]) == 0
    got = []  # the recording's ground truth goes out as the camera's typed GroundTruth
    sub = ros.create_subscription(messages.GroundTruth, "paced_truth",
                                  lambda m: got.append((time.monotonic(), m.frame)), EVENT_QOS)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "icub_guard.ros.replay_node", "--ros-args", "-p",
                                 f"path:={short}", "-p", "rate:=3.0", "-p", "wait_for_subscribers:=20.0", "-r",
                                 "/ground_truth:=/paced_truth"], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        ros.wait_for(lambda: proc.poll() is not None, 60, "the replay to end")
        ros.spin_for(0.2)
        assert proc.returncode == 0, proc.stdout.read()
    finally:
        ros.destroy_subscription(sub)
    assert [frame for _, frame in got] == list(range(7))
    assert 0.3 <= got[-1][0] - got[0][0] < 1.0  # 1.2 s recorded, played 3× as fast: 0.4 s


def test_replay_refuses_a_damaged_recording(recording, tmp_path):
    bad = _damage(recording, tmp_path / "cut.mcap", "truncated")
    r = subprocess.run([sys.executable, "-m", "icub_guard.ros.replay_node", "--ros-args", "-p", f"path:={bad}"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and f"recording {bad} is truncated" in r.stderr and "Traceback" not in r.stderr


def test_the_attack_node_records_the_stream_it_publishes(ros, recording, model, tmp_path):
    from sensor_msgs.msg import Image, RegionOfInterest

    from icub_guard.ros import messages
    from icub_guard.ros.common import EVENT_QOS
    from icub_guard.ros.convert import image_to_rgb, rgb_to_image

    from ros_harness import start_node, stop

    out = tmp_path / "attacked.mcap"
    proc = start_node("attack_node", {"model_path": str(model), "attack": "fgsm", "eps": 300.0, "enabled": True,
                                      "device": "cpu", "record_path": str(out)}, tmp_path / "attack.log",
                      {"image_in": "rec_image_in", "image_out": "image_out"})
    pub = ros.create_publisher(Image, "rec_image_in", EVENT_QOS)
    pub_gt = ros.create_publisher(messages.GroundTruth, "ground_truth", EVENT_QOS)  # the camera's typed truth
    frames = read_frames(recording, Topics.defaults())[:3]
    try:
        for publisher in (pub, pub_gt, ros.pub_roi):  # the harness subscribes to ground_truth itself: count > 0 at once
            ros.wait_subscribed(publisher, "attack_node")
        ros.wait_spinning("attack_node")
        ros.wait_matched("image_out", "attack_node")
        n0 = len(ros.msgs["image_out"])
        for i, f in enumerate(frames):
            ros.pub_roi.publish(RegionOfInterest(x_offset=f.roi[0], y_offset=f.roi[1], width=f.roi[2],
                                                 height=f.roi[3]))
            pub_gt.publish(messages.GroundTruth(label=f.label, frame=i))
            ros.spin_for(0.05)
            pub.publish(rgb_to_image(f.image))
            ros.wait_for(lambda i=i: len(ros.msgs["image_out"]) > n0 + i, 60, "image_out")
    finally:
        stop(proc)
        ros.destroy_publisher(pub)
        ros.destroy_publisher(pub_gt)
    assert out.exists() and not out.with_name(out.name + ".partial").exists(), (tmp_path / "attack.log").read_text()
    published = [image_to_rgb(m) for m in ros.msgs["image_out"][n0:]]
    recorded = read_frames(out, Topics.defaults())
    assert [f.label for f in recorded] == [f.label for f in frames]
    assert all(np.array_equal(r.image, p) for r, p in zip(recorded, published, strict=True))
    assert any(not np.array_equal(r.image, f.image) for r, f in zip(recorded, frames))  # attacked frames
    assert topic_summary(out)[Topics.defaults().attack][0] == "icub_guard_msgs/msg/AttackReport"
    reports = [MessageDecoder(out)(m) for m in iter_messages(out, [Topics.defaults().attack])]
    assert reports and {r.attack for r in reports} == {"fgsm"} and all(r.eps == 300.0 for r in reports)
    assert reports[-1].attacked == len(reports) == len(frames)  # one region a frame, counted as it went
