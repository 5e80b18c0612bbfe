"""The security evaluation end to end on a tiny configuration, and its report files."""

import csv
import dataclasses
import json

import numpy as np
import pytest
import torch

from icub_guard.cli import main
from icub_guard.evaluation import EvalConfig, run_security_evaluation, write_report
from icub_guard.evaluation.curves import CurveKey, CurveRecord, rises
from icub_guard.evaluation.metrics import pass_score, ssim
from icub_guard.evaluation.security import ADAPTIVE_ATTACKER, ATTACKERS, CLASSIFIERS

from conftest import shrink

TINY = dict(n_train=10, n_val=6, n_test=1, d_max=(0.0, 600.0, 3000.0), steps=6, input_size=64, device="cpu")


@pytest.fixture(scope="module")
def result():
    return run_security_evaluation(EvalConfig(**TINY))


def test_curves_cover_every_classifier_and_start_at_clean_accuracy(result):
    for mode in ("generic", "specific"):
        assert [c.key for c in result.curves_of(mode)] == [
            CurveKey("svm", mode), CurveKey("svm-rbf", mode), CurveKey("svm-adv", mode), CurveKey("svm-adv+5%", mode),
            CurveKey("svm-adv+5%", mode, adaptive=True)]
        assert list(result.accuracy[mode]) == list(CLASSIFIERS)  # results.json's table, by label
        for c in result.curves_of(mode):
            accs = c.accuracy
            assert len(accs) == 3 and all(0 <= a <= 1 for a in accs)
            assert accs[0] == pytest.approx(result.test_accuracy[c.key.classifier])
            assert not rises(accs, 7), (c.key, accs)  # one rule at every d_max: nothing rises
            assert (c.target_success is not None) == (mode == "specific")
    # the undefended classifiers fall under attack; the rejected-counts-as-correct rule applies
    rbf_generic = result.curve("svm-rbf", "generic").accuracy
    assert rbf_generic[-1] < rbf_generic[0]
    for mode in ("generic", "specific"):
        adv = np.array(result.curve("svm-adv", mode).accuracy[1:])
        rbf = np.array(result.curve("svm-rbf", mode).accuracy[1:])
        assert (adv >= rbf).all()  # same adversarial points; rejections can only help


def test_curve_records_never_mislabel_the_adaptive_attacker(result, tmp_path):
    """Only the reject-aware attacker's curve is "(adaptive)", and every report writes each curve under its own
    label: a blind and an adaptive curve of the same classifier with different values stay apart."""
    assert ADAPTIVE_ATTACKER.aware and ADAPTIVE_ATTACKER.curve_keys("generic") == [
        CurveKey("svm-adv+5%", "generic", adaptive=True)]
    assert not any(k.adaptive for a in ATTACKERS for m in ("generic", "specific") for k in a.curve_keys(m))
    blind, aware = CurveKey("svm-adv+5%", "generic"), CurveKey("svm-adv+5%", "generic", adaptive=True)
    assert blind != aware and (blind.label, aware.label) == ("svm-adv+5%", "svm-adv+5% (adaptive)")
    aware_s = CurveKey("svm-adv+5%", "specific", adaptive=True)
    fake = dataclasses.replace(result, d_max=[0.0, 500.0], pass_mean={}, curves=[
        CurveRecord(blind, [1.0, 0.75], [0.0, 0.25], [0.0, 400.0]),
        CurveRecord(aware, [1.0, 0.25], [0.0, 0.5], [0.0, 450.0]),
        CurveRecord(aware_s, [1.0, 0.5], [0.0, 0.0], [0.0, 420.0], target_success=[0.0, 0.5])])
    assert fake.curve("svm-adv+5%", "generic", adaptive=True).accuracy == [1.0, 0.25]
    write_report(fake, tmp_path)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["accuracy"] == {"generic": {"svm-adv+5%": [1.0, 0.75], "svm-adv+5% (adaptive)": [1.0, 0.25]},
                                "specific": {"svm-adv+5% (adaptive)": [1.0, 0.5]}}
    assert data["rejected"]["generic"] == {"svm-adv+5%": [0.0, 0.25], "svm-adv+5% (adaptive)": [0.0, 0.5]}
    assert data["target_success"] == {"svm-adv+5% (adaptive)": [0.0, 0.5]}
    rows = [(r["mode"], r["classifier"], float(r["d_max"]), float(r["accuracy"]), r["target_success"])
            for r in csv.DictReader(open(tmp_path / "results.csv"))]
    assert rows == [("generic", "svm-adv+5%", 0.0, 1.0, ""), ("generic", "svm-adv+5%", 500.0, 0.75, ""),
                    ("generic", "svm-adv+5% (adaptive)", 0.0, 1.0, ""),
                    ("generic", "svm-adv+5% (adaptive)", 500.0, 0.25, ""),
                    ("specific", "svm-adv+5% (adaptive)", 0.0, 1.0, "0.0"),
                    ("specific", "svm-adv+5% (adaptive)", 500.0, 0.5, "0.5")]
    md = (tmp_path / "report.md").read_text()
    assert "| svm-adv+5% | 1.00 | 0.75 |" in md and "| svm-adv+5% (adaptive) | 1.00 | 0.25 |" in md
    assert "- svm-adv+5% (adaptive): 0.00 0.50" in md


def test_sanity_checks_pass_and_analysis(result):
    failed = [c for c in result.sanity if not c["passed"]]
    assert not failed, failed
    names = " ".join(c["check"] for c in result.sanity)
    assert "more attack steps" in names and "reaches its target" in names and "does not rise" in names
    assert "binarization test" in names and "gradient-free attack is not stronger" in names
    assert "unbounded attack reaches 100%" in names
    assert "more steps and restarts do not break what the ensemble left (svm-rbf)" in names
    a = result.analysis
    assert a["input_l2"] == 500.0 and a["feature_shift_attack_mean"] > a["feature_shift_noise_mean"]
    assert a["ratio_attack_over_noise"] > 1


def test_the_monotonicity_check_can_fail():
    assert rises([0.83, 1.0, 0.6], 7) == [0]  # the saved report's svm-adv+5% rise at d_max 0 → 250
    assert rises([0.83, 0.83 + 1 / 7, 0.5], 7) == []  # one sample is noise
    assert rises([0.5, 0.4, 0.7], 7) == [1]


def test_judged_images_are_within_d_max(tmp_path):
    """The crops that are judged and reported are whole pixel values inside the l2 ball."""
    from icub_guard.attacks import PaperAttack
    from icub_guard.core import GuardModel, make_classifier
    from icub_guard.core.features import BackboneSpec, FeatureExtractor
    from icub_guard.sim.datasets import simworld

    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, 64), "cpu")
    tr = simworld("7", "train", 4)
    clf = make_classifier("svm-rbf", C=10.0).fit(fx.extract(tr.images), tr.labels)
    x = torch.from_numpy(tr.images[:6]).float()
    y = torch.tensor([list(clf.classes_).index(v) for v in tr.labels[:6]])
    for r, eps in zip(PaperAttack(GuardModel.from_classifier(fx, clf), steps=6).sweep(x, y, [50.0, 250.0]),
                      [50.0, 250.0], strict=True):
        d = torch.from_numpy(r.images()).float() - x
        assert (d.flatten(1).norm(dim=1) <= eps + 1e-4).all()


def test_report_files(result, tmp_path):
    write_report(result, tmp_path)
    for f in ("security_accuracy.png", "security_accuracy.svg", "examples.png", "examples.svg", "results.json",
              "results.csv", "config.json", "report.md"):
        assert (tmp_path / f).stat().st_size > 0, f
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["d_max"] == [0.0, 600.0, 3000.0] and "sanity" in data
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert len(rows) == 2 * 5 * 3
    md = (tmp_path / "report.md").read_text()
    assert "security_accuracy.png" in md and "Sanity checks" in md


def test_pass_and_ssim():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    img = np.ascontiguousarray(np.repeat(np.repeat(img[::4, ::4], 4, 0), 4, 1))
    assert ssim(img[..., 0], img[..., 0]) == pytest.approx(1.0)
    shifted = np.roll(img, 1, axis=1)
    noisy = np.clip(img + rng.normal(0, 40, img.shape), 0, 255).astype(np.uint8)
    assert pass_score(img, shifted) > pass_score(img, noisy)


def test_cli_evaluate_writes_a_report(tmp_path, capsys):
    """The paper's procedure (Algorithm 1 per d_max) stays one flag away; the module's fixture runs the fast one."""
    rc = main(["-q", "evaluate", "--weights", "random", "--input-size", "64", "--n-train", "8", "--n-val", "4",
               "--n-test", "1", "--d-max", "0", "2000", "--steps", "3", "--no-adaptive", "--attack", "algorithm1",
               "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "sanity checks" in out and "accuracy vs d_max" in out and "more attack steps do not raise accuracy" in out
    md = (tmp_path / "report.md").read_text()
    assert "Algorithm 1 in l2, 3 steps per d_max" in md
    assert "(adaptive)" not in md  # --no-adaptive: no curve is labelled adaptive


def test_the_fast_curve_reports_its_attack(result):
    assert result.attack["curves"] == "fmn" and set(result.attack["runs"]) == {
        f"{r} ({m})" for r in ("svm", "svm-rbf", "svm-adv+5% (adaptive)") for m in ("generic", "specific")}
    names = [c["check"] for c in result.sanity]
    assert any(n.startswith("minimum-norm curve is not above Algorithm 1 at any d_max") for n in names)
    assert "more attack steps do not raise the minimum-norm curve (svm-rbf)" in names


@pytest.mark.parametrize(("kw", "match"), [(dict(attack="pgd"), "attack must be one of"),
                                           (dict(attack="fmn", norm="linf"), "l2 only"),
                                           (dict(fmn_steps=0), "fmn_steps"),
                                           (dict(norm="linf", d_max=(0, 8, 500)), "linf d_max 500 is above 255"),
                                           (dict(norm="l3"), "unknown norm")])
def test_bad_evaluation_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        EvalConfig(**kw)
    assert EvalConfig(norm="linf").curve_attack == "algorithm1" and EvalConfig().curve_attack == "fmn"


def test_the_default_budgets_follow_the_norm():
    """A linf budget bounds each pixel (0..255): l2's grid (250 .. 4000) given for linf measured nothing, every
    curve 0 from the first budget (the main sweep's linf cells did until 2026-12-02)."""
    from icub_guard.evaluation import DefenceEvalConfig

    assert EvalConfig().d_max == (0.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0)
    assert EvalConfig(norm="linf").d_max == (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    assert (DefenceEvalConfig().d_max, DefenceEvalConfig().table_d_max) == ((0.0, 500.0, 1000.0, 2000.0), 1000.0)
    assert (DefenceEvalConfig(norm="linf").d_max, DefenceEvalConfig(norm="linf").table_d_max) == (
        (0.0, 4.0, 8.0, 16.0), 8.0)
    with pytest.raises(ValueError, match="linf d_max 1000, 2000 is above 255"):
        DefenceEvalConfig(norm="linf", d_max=(0, 8, 1000, 2000), table_d_max=8)


def test_cli_refuses_the_fast_attack_in_linf(capsys):
    assert main(["-q", "evaluate", "--weights", "random", "--attack", "fmn", "--norm", "linf"]) != 0
    assert "l2 only" in capsys.readouterr().err


def test_the_binarization_test_fails_a_null_attack_and_passes_the_evaluations(data7):
    """Zimmermann et al.'s test: an adversarial example exists by construction; an attack that returns the clean
    crop finds none (FAIL), the evaluation's attack (minimum-norm curve and ensemble) finds every one."""
    import cv2
    import torch

    from icub_guard.core.features import BackboneSpec, FeatureExtractor
    from icub_guard.evaluation.binarization import binarization_test
    from icub_guard.evaluation.curves import CurveSettings, EnsembleSettings, budget_attack

    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, 64), device="cpu")
    crops = np.stack([cv2.resize(i, (32, 32), interpolation=cv2.INTER_AREA) for i in data7["test"].images[::16]])
    x = torch.from_numpy(crops).float()

    evaluations = budget_attack(CurveSettings("fmn", "l2", 20, 20, 10, 10, "float32"), EnsembleSettings())

    def null(model, xs, ys, d, failed):
        return xs.round().clamp(0, 255).to(torch.uint8).numpy()

    weak = binarization_test(fx, x, 240.0, null)
    assert weak.tested == 7 and weak.found == 0 and not weak.passed
    strong = binarization_test(fx, x, 240.0, evaluations)
    assert strong.tested == 7 and strong.fraction >= 0.95 and strong.passed
    # against a defence's input transforms (`evaluate --defences`): the binarized guard keeps them in front
    from icub_guard.defences import make_defence

    blur = binarization_test(fx, x[:2], 240.0, null, transforms=(make_defence("blur"),))
    assert blur.tested + blur.skipped == 2 and blur.found == 0 and not blur.passed


def test_the_binarization_test_draws_its_points_in_the_attacks_norm(data7):
    """A linf budget bounds each pixel: drawn in an l2 ball of radius 8 the points were inseparable and the test had
    nothing to test (the main sweep's linf cells: "found for 0 of 0"); in the linf ball it tests every crop, FAILs
    the null attack and passes the linf evaluation's. Nothing tested is inconclusive, never a pass."""
    import cv2
    import torch

    from icub_guard.core.features import BackboneSpec, FeatureExtractor
    from icub_guard.evaluation.binarization import BinarizationResult, binarization_test
    from icub_guard.evaluation.curves import CurveSettings, EnsembleSettings, budget_attack

    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, 64), device="cpu")
    crops = np.stack([cv2.resize(i, (32, 32), interpolation=cv2.INTER_AREA) for i in data7["test"].images[::16]])
    x = torch.from_numpy(crops[:3]).float()

    def null(model, xs, ys, d, failed):
        return xs.round().clamp(0, 255).to(torch.uint8).numpy()

    assert binarization_test(fx, x, 8.0, null, norm="l2").tested == 0  # the l2 ball: nothing separable
    weak = binarization_test(fx, x, 8.0, null, norm="linf")
    assert (weak.tested, weak.found, weak.passed) == (3, 0, False)
    attack = budget_attack(CurveSettings("algorithm1", "linf", 20, 20, 10, 10, "float32"),
                           EnsembleSettings(20, 3, "float32", "linf"))
    strong = binarization_test(fx, x, 8.0, attack, norm="linf")
    assert (strong.tested, strong.found, strong.passed) == (3, 3, True)
    nothing = BinarizationResult(0, 0, 3, 0.95)
    assert not nothing.passed and "inconclusive" in nothing.detail(8.0)
    with pytest.raises(ValueError, match="l2 or linf"):
        binarization_test(fx, x, 8.0, null, norm="l1")


def test_the_stronger_attack_checks_fail_an_evaluation_that_left_crops_it_could_have_broken(data7):
    """The gradient-free and the more-steps-and-restarts checks FAIL when the published crops are the clean ones
    (an evaluation that attacked nothing) and pass on what the ensemble published."""
    import cv2

    from icub_guard.core import GuardModel, make_classifier
    from icub_guard.core.features import BackboneSpec, FeatureExtractor
    from icub_guard.evaluation.curves import (
        CurveProblem,
        EnsembleSettings,
        FeatureMemo,
        curve_images,
        ensemble_images,
        failed_judge,
    )
    from icub_guard.evaluation.security import _left_unbroken_checks, _Setting

    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, 64), device="cpu")
    small = lambda d: np.stack([cv2.resize(i, (32, 32), interpolation=cv2.INTER_AREA) for i in d.images])
    clf = make_classifier("svm-rbf", C=10.0).fit(fx.extract(small(data7["train"])), data7["train"].labels)
    crops = small(data7["test"])[::16]
    y_true = np.array([list(clf.classes_).index(v) for v in data7["test"].labels[::16]])
    x, y = torch.from_numpy(crops).float(), torch.from_numpy(y_true)
    cfg = EvalConfig(d_max=(0.0, 2400.0), square_queries=100, ensemble_steps=10, device="cpu", precision="float32")
    judge = FeatureMemo(fx)
    failed = failed_judge(clf, judge, y_true, None)
    s = _Setting(cfg, "float32", x, y, y_true, [0.0, 2400.0], judge)
    model = GuardModel.from_classifier(fx, clf)
    clean = crops.copy()
    null = _left_unbroken_checks(s, [1.0, 1.0], model, failed, [clean, clean])
    assert [c[1] for c in null] == [False, False], null
    problem = CurveProblem(model, x, y, [0.0, 2400.0], failed, deep=False)
    images, _ = ensemble_images(EnsembleSettings(10, 2, "float32"), problem,
                                curve_images(cfg.curve_settings("float32"), problem)[0])
    acc = float(np.mean(failed(images[1], np.arange(len(y)))))
    assert all(c[1] for c in _left_unbroken_checks(s, [1.0, acc], model, failed, images))


def test_robust_error_is_stutz_et_al_s():
    """Stutz et al. 2020: a clean rejection leaves the count unless the attack gets accepted wrongly; an error on
    either version counts once. Accuracy counts every rejection as correct; this does not reward it."""
    from icub_guard.evaluation.metrics import robust_error

    y = np.array([0, 0, 0, 0, 0])
    clean = np.array([0, -1, -1, 1, 0])  # right, rejected, rejected, wrong, right
    adv = np.array([0, -1, 2, 1, 3])  # kept, still rejected, fooled after a clean rejection, wrong, fooled
    # counted: 0, 2, 3, 4 (1: rejected both times); wrong: 2, 3, 4
    assert robust_error(clean, adv, y) == pytest.approx(3 / 4)
    assert robust_error(clean, clean, y) == pytest.approx(1 / 3)  # d_max 0: the selective error
    everything_rejected = np.full(5, -1)
    assert robust_error(everything_rejected, everything_rejected, y) == 0.0


def test_the_ensembles_members_break_what_the_curves_attack_left(data7, small7):
    """`ensemble_images` on a curve whose own attack broke nothing (the clean crops published at every d_max): APGD-CE
    and APGD-T must break crops themselves, each crop they break is published inside its budget, a crop broken at
    the smaller d_max is carried to the larger one, and APGD-T runs only on what APGD-CE left. An ensemble whose
    members add nothing fails here (the cross-checks against torchattacks pass on the minimum-norm curve alone)."""
    from icub_guard.evaluation.curves import CurveProblem, EnsembleSettings, ensemble_images

    fx, clf, te = small7.fx, small7.clf, data7["test"]
    idx = np.arange(0, len(te), 4)
    crops = shrink(te.images[idx])
    x = torch.from_numpy(crops).float()
    y = torch.tensor([list(clf.classes_).index(v) for v in te.labels[idx]])

    def failed(images, i):  # still correct
        return clf.predict_indices(fx.extract(images)) == y.numpy()[i]

    grid = [0.0, 60.0, 240.0]
    problem = CurveProblem(small7.model, x, y, grid, failed, deep=False)
    out, wins = ensemble_images(EnsembleSettings(10, 2, "float32"), problem, [crops.copy() for _ in grid])
    every = np.arange(len(y))
    acc = [float(np.mean(failed(im, every))) for im in out]
    clean = acc[0]
    assert clean > 0.5 and wins["curve"] == [int(len(y) - clean * len(y))] * 3  # the curve broke only clean errors
    assert acc[2] <= clean - 0.5, acc  # the members broke most of what was left
    assert wins["apgd-ce"][1] + wins["apgd-t"][1] > 0 and wins["apgd-ce"][2] + wins["apgd-t"][2] > 0, wins
    assert wins["carried"][2] > 0, wins  # broken at d_max 60: inside 240 too, tried before the members
    for i, d in enumerate(grid):  # every published crop is whole pixels inside its budget
        assert out[i].dtype == np.uint8
        norms = np.linalg.norm((out[i].astype(np.float64) - crops).reshape(len(y), -1), axis=1)
        assert norms.max() <= d + 1e-6
        assert wins["curve"][i] + wins["carried"][i] + wins["apgd-ce"][i] + wins["apgd-t"][i] == \
            round((1 - acc[i]) * len(y))  # each broken crop counted once, by the member that broke it first
