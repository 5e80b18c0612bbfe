"""`Guard`: the one runtime the node, the in-process demo and the evaluations drive."""

from __future__ import annotations

import shlex
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import yaml

from icub_guard.core.errors import InputError
from icub_guard.core.guard import Guard, GuardConfig
from icub_guard.core.recognizer import RecognizerConfig
from icub_guard.core.screening import ScreeningConfig
from icub_guard.core.session import SessionConfig, parse_class_thresholds
from icub_guard.defaults import node_defaults
from icub_guard.sim.teachers import OracleTeacher
from icub_guard.sim.teaching import LiveFrame, teach

from conftest import make_recognizer

ROOT = Path(__file__).resolve().parents[1]


def test_a_frame_goes_through_crop_classifier_defences_and_the_protocol(trained, data7):
    guard = Guard(trained, GuardConfig(trained.config, defences="mahalanobis:false_reject=0.5"))
    image = np.zeros((96, 128, 3), np.uint8)
    image[20:84, 30:94] = data7["test"].images[0]
    f = guard.frame(image, (30, 20, 64, 64))
    assert f.roi is not None and f.roi_source == "topic" and f.crop.shape == (trained.config.crop_size,) * 2 + (3,)
    assert "mahalanobis" in f.decision.stages  # the defence reviewed the classifier's decision
    assert guard.crop_of(f.decision_id) is f.crop or np.array_equal(guard.crop_of(f.decision_id), f.crop)
    body = guard.decision_payload(f, frame_id="cam")
    assert body["roi"] == list(f.roi.as_tuple()) and body["stages"] == f.decision.stages and body["frame_id"] == "cam"
    with pytest.raises(InputError):
        guard.frame(np.zeros((4, 4), np.uint8))  # not an image: refused, nothing recorded
    assert len(guard.session.recent) == 1


def test_every_region_of_a_frame_is_judged_in_one_batch(trained, data7):
    """Several regions: one batched forward, each its own decision id, each decided as the single-region path
    decides it (within float tolerance); a bad region refuses the whole frame and records nothing."""
    guard = Guard(trained, GuardConfig(trained.config))
    image = np.zeros((96, 200, 3), np.uint8)
    boxes = [(4 + 66 * k, 16, 64, 64) for k in range(3)]
    for k, (x, y, w, h) in enumerate(boxes):
        image[y:y + h, x:x + w] = data7["test"].images[5 * k]
    calls = []
    extract = trained.extractor.extract
    trained.extractor.extract = lambda crops: calls.append(len(crops)) or extract(crops)
    try:
        steps = guard.frame_regions(image, boxes, source="hdr")
    finally:
        trained.extractor.extract = extract
    assert calls == [3]  # one forward for the three regions
    assert [s.roi.as_tuple() for s in steps] == boxes and {s.roi_source for s in steps} == {"regions"}
    assert len({s.decision_id for s in steps}) == 3 and guard.seen(steps[1].decision_id).source == "hdr"
    for s, box in zip(steps, boxes, strict=True):
        alone = guard.frame(image, box)
        assert alone.decision.label == s.decision.label
        for c in alone.decision.scores:
            assert abs(alone.decision.scores[c] - s.decision.scores[c]) < 1e-4
    n = len(guard.session.recent)
    for bad in ([], [boxes[0], (500, 500, 10, 10)], [boxes[0]] * 65):
        with pytest.raises(InputError):
            guard.frame_regions(image, bad)
    assert len(guard.session.recent) == n


def _stream(data7, extractor, n: int = 4) -> list[LiveFrame]:
    """Two rounds over the first `n` test crops of each class (features extracted once)."""
    d = data7["test"]
    idx = [i for c in d.classes for i in np.flatnonzero(d.labels == c)[:n]]
    feats = extractor.extract(d.images[idx])
    return [LiveFrame(d.images[i], feats[k:k + 1], d.labels[i], r) for r in (0, 1) for k, i in enumerate(idx)]


def _blas_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_a_frame_runs_numpys_blas_on_one_thread_and_gives_the_threads_back(trained, data7, caplog):
    """torch's and OpenBLAS's spinning thread pools fought for the cores on every frame (8 regions: 211 ms, 57 ms
    with OpenBLAS on one thread; bench/bench_guard.py): the classifier and screening run with numpy's BLAS on one
    thread, and the earlier limit is back after the frame (nested blocks too). A frame in a thread that cannot
    set OpenBLAS's limit (threadpoolctl lets one thread set it) is judged all the same, and the log says why."""
    import threading

    from threadpoolctl import threadpool_limits

    from icub_guard.core.threads import frame_blas

    guard = Guard(trained, GuardConfig(trained.config))
    image = np.zeros((96, 200, 3), np.uint8)
    image[16:80, 4:68] = data7["test"].images[0]
    seen = []
    classify = trained.classify_features
    trained.classify_features = lambda feats: seen.append(_blas_threads()) or classify(feats)
    try:
        with threadpool_limits(2, user_api="blas"):
            guard.frame(image, (4, 16, 64, 64))
            guard.frame_regions(image, [(4, 16, 64, 64), (70, 16, 64, 64)])
            assert _blas_threads() == {2}
            with frame_blas():
                with frame_blas():
                    assert _blas_threads() == {1}
                assert _blas_threads() == {1}  # the outer block still runs
            assert _blas_threads() == {2}
            assert seen == [{1}, {1}]
            # this thread controls OpenBLAS's limit while it lives: a frame in another thread keeps 2 threads
            steps = []
            with caplog.at_level("WARNING", logger="icub_guard.core.threads"):
                t = threading.Thread(target=lambda: steps.append(guard.frame(image, (4, 16, 64, 64))))
                t.start()
                t.join(60)
            assert len(steps) == 1 and steps[0].decision_id is not None  # judged all the same
            assert seen[-1] == {2} and "another Python thread controls OpenBLAS's limit" in caplog.text
    finally:
        trained.classify_features = classify


def test_the_in_process_teaching_loop_runs_the_guards_defences(extractor, data7):
    """The demo's loop decides through the defences: a detector set to reject half the clean crops rejects more."""
    frames = _stream(data7, extractor, 8)
    results, guards = {}, {}
    for specs in ("", "mahalanobis:false_reject=0.5:components=8"):
        rec = make_recognizer(extractor)
        guards[specs] = Guard(rec, GuardConfig(rec.config, defences=specs))
        results[specs] = teach(guards[specs], frames, [OracleTeacher()], seed=0)
    plain, defended = results[""]["total"], results["mahalanobis:false_reject=0.5:components=8"]["total"]
    assert defended["reject_rate"] > plain["reject_rate"] + 0.2
    assert "mahalanobis" in guards["mahalanobis:false_reject=0.5:components=8"].decide(frames[0].crop[None])[0].stages


def test_settings_are_checked_as_a_whole_by_parameter_name_then_applied(trained):
    guard = Guard(trained, GuardConfig(trained.config))
    for bad in ({"screening_refuse_at": 2.0}, {"threshold": 50.0}, {"defences": "blur,nope"},
                {"class_thresholds": "not json"}, {"screening_quarantine_at": 0.99, "screening_refuse_at": 0.5},
                {"query_on_reject": "yes"}):
        with pytest.raises(ValueError):
            guard.check_settings(bad)
    assert guard.session.config.threshold == node_defaults("guard.yaml")["threshold"]  # nothing applied
    done = guard.apply_settings({"threshold": 0.5, "defences": "multicrop", "screening_audit_rate": 0.2,
                                 "debug_image": False})  # a node's own parameter is not the guard's
    assert guard.session.config.threshold == 0.5 and guard.defences.specs == ["multicrop"]
    assert guard.session.screen.config.audit_rate == 0.2 and len(done) == 3
    assert set(guard.session.thresholds().values()) == {0.5}


def test_save_restore_and_reset_touch_the_model_file(trained, data7, tmp_path):
    model = tmp_path / "sub" / "guard.npz"
    guard = Guard(trained, GuardConfig(trained.config, model_path=str(model)))
    assert "0 replayed" in guard.restore() and model.parent.is_dir()
    step = guard.judge(data7["test"].images[0])
    assert guard.feedback(f'{{"decision_id": {step.decision_id}, "label": "mug"}}').action == "learned"
    assert guard.save() == f"saved {model}" and model.is_file()
    guard.reset()
    assert not model.exists() and guard.classes == []  # a restart must not bring the old model back
    with pytest.raises(InputError, match="nothing learned"):
        guard.save()
    assert guard.close()
    with pytest.raises(InputError, match="no model path"):
        Guard(trained, GuardConfig(trained.config)).save()


@pytest.mark.parametrize("cls", [RecognizerConfig, SessionConfig, ScreeningConfig])
def test_every_setting_default_is_the_guard_parameter_in_config(cls):
    """One source of defaults: a config built with no arguments holds config/guard.yaml's values."""
    yaml_values, cfg = node_defaults("guard.yaml"), cls()
    checked = 0
    for f in fields(cls):
        if "param" not in f.metadata:
            continue
        want = yaml_values[f.metadata["param"]]
        got = getattr(cfg, f.name)
        if f.name == "gamma":
            assert (got == "median") == (want == 0)
        elif f.name == "max_per_class":
            assert got == (want or None)
        elif f.name == "roi_fixed":
            assert got is None  # roi_mode full: the box is not used
        else:
            assert got == want, f.name
        checked += 1
    assert checked >= 3
    assert RecognizerConfig().weights == yaml_values["weights"] == "auto"


def test_a_setting_out_of_its_range_names_the_field():
    with pytest.raises(InputError, match=r"screening prior_trust must be in \[0.01, 0.99\]"):
        ScreeningConfig(prior_trust=1.0)
    with pytest.raises(InputError, match="query_rate_limit must be a number"):
        SessionConfig(query_rate_limit="fast")
    with pytest.raises(InputError, match="input_size must be in"):
        RecognizerConfig(input_size=8)


def test_readmes_class_thresholds_command_sends_a_json_string():
    """`ros2 param set` reads the value as YAML: README's command must arrive as text the guard parses."""
    lines = [ln for ln in (ROOT / "README.md").read_text().splitlines()
             if ln.strip().strip("`").startswith("ros2 param set") and "class_thresholds" in ln]
    assert lines, "README shows how to set class_thresholds"
    for line in lines:
        words = shlex.split(line.strip().strip("`"))
        value = yaml.safe_load(words[words.index("class_thresholds") + 1])
        assert isinstance(value, str), f"{line!r} sends a {type(value).__name__}, not text"
        assert parse_class_thresholds(value)


def test_relative_model_paths_live_under_ros_home(monkeypatch, tmp_path):
    pytest.importorskip("rclpy")
    from icub_guard.ros.common import resolve_model_path

    monkeypatch.setenv("ROS_HOME", str(tmp_path))
    assert resolve_model_path("guard_model.npz") == str(tmp_path / "icub_guard" / "guard_model.npz")
    assert resolve_model_path("/abs/m.npz") == "/abs/m.npz" and resolve_model_path("  ") is None
    monkeypatch.delenv("ROS_HOME")
    assert resolve_model_path("m.npz") == str(Path.home() / ".ros" / "icub_guard" / "m.npz")
