"""`evaluate-openset` on a tiny setting: its measures, its report, and the metric it rests on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from icub_guard.core.errors import InputError
from icub_guard.evaluation.openset import (
    FAR,
    NEAR,
    SCORES,
    OpensetConfig,
    OpensetResult,
    auroc_fpr95,
    backbone_choices,
    far_ood,
    merge_into,
    run_openset_evaluation,
    write_openset_report,
)


def test_auroc_and_fpr95_read_the_right_way_round():
    rng = np.random.default_rng(0)
    ident, ood = rng.normal(2, 0.1, 200), rng.normal(0, 0.1, 200)
    assert auroc_fpr95(ident, ood) == (1.0, 0.0)
    assert auroc_fpr95(ood, ident) == (0.0, 1.0)  # a score that ranks OOD higher is the worst, not the best
    a, f = auroc_fpr95(ident, rng.normal(2, 0.1, 200))
    assert 0.4 < a < 0.6 and f > 0.8


def test_far_ood_sets_are_seeded_and_distinct():
    a, b = far_ood(5, 32, 0), far_ood(5, 32, 0)
    assert list(a) == list(FAR)
    assert all(np.array_equal(a[k].images, b[k].images) for k in a)
    assert a["blank"].images.reshape(5, -1, 3).std(1).max() == 0  # one colour per image
    assert a["noise"].images.std() > 60 and not np.array_equal(a["noise"].images, far_ood(5, 32, 1)["noise"].images)


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="taught"):
        OpensetConfig(taught=("mug", "spoon"))
    with pytest.raises(InputError, match="not random"):
        backbone_choices(["/no/such/file.pt"])
    assert [c.name for c in backbone_choices(["random", "simworld", "simworld2"], "resnet18")] == [
        "resnet18", "simnet", "simnet"]
    assert [c.weights for c in backbone_choices(None, "resnet18")][:3] == ["random", "simworld", "simworld2"]


def test_tiny_openset_evaluation_reports_every_score_set_and_budget(tmp_path):
    cfg = OpensetConfig(taught=("mug", "duck"), n_train=5, n_val=4, n_test=4, n_far=6, n_adv=1,
                        d_max=(0.0, 3000.0), fmn_steps=3, steps=2, recognition_train=0, recognition_test=0,
                        analysis_n=0, device="cpu")
    res = run_openset_evaluation(cfg, backbone_choices(["random"], "simnet", 32))
    (label, b), = res.backbones.items()
    assert label == "simnet:random@32" and set(b["ood"]) == {*NEAR, *FAR}
    for row in b["ood"].values():
        assert all(0 <= row[s]["auroc"] <= 1 and 0 <= row[s]["fpr95"] <= 1 for s in SCORES)
        assert 0 <= row["rejected_by_guard"] <= 1
    # untaught jenga, domino, soccerball, teddy, lego: one attacked crop each; a budget can only lower what stays
    # rejected, and at d_max 0 it is what the guard rejects of those crops clean
    still = b["adversarial_still_rejected"]
    assert len(still) == 2 and still[1] <= still[0]
    assert b["ood"]["blank"]["knn"]["auroc"] > 0.5  # flat colour is far from every taught crop
    files = write_openset_report(res, tmp_path)
    assert json.loads((tmp_path / "results.json").read_text())["backbones"][label]["dim"] == 512
    md = (tmp_path / "report.md").read_text()
    assert "| reject |" in md and "untaught still rejected" in md and (tmp_path / "roc.png").stat().st_size > 0
    assert files["markdown"] == "report.md"


def test_columns_from_an_earlier_run_join_only_with_the_same_settings():
    cfg = {"seed": 0, "n_test": 4, "backbones": ["a"]}
    earlier = OpensetResult(dict(cfg), {"a": {"x": 1}}, {"total_s": 2.0}).to_json()
    merged = merge_into(OpensetResult(cfg | {"backbones": ["b"]}, {"b": {"x": 2}}, {"total_s": 3.0}), earlier)
    assert list(merged.backbones) == ["a", "b"] and merged.config["backbones"] == ["a", "b"]
    assert merged.timing["total_s"] == 5.0
    with pytest.raises(InputError, match="other settings"):
        merge_into(OpensetResult(cfg | {"n_test": 5}, {"b": {}}, {"total_s": 1.0}), earlier)
