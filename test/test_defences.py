"""The defences: each module, the defended model an adaptive attacker runs on, the pipeline, the evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from icub_guard.attacks import OrthogonalPGD, PaperAttack
from icub_guard.core.errors import GuardError
from icub_guard.defences import DefencePipeline, DefendedModel, Jpeg, Mahalanobis, MultiCrop, OpenSetEVT, make_defence
from icub_guard.defences.smoothing import clopper_pearson_lower


@pytest.fixture(scope="module")
def guard(extractor, feats7, data7):
    """A trained guard model, its train/val features and test crops (SimWorld7, random AlexNet at 128 px)."""
    from icub_guard.core.pipeline import GuardModel
    from icub_guard.core.svm import make_classifier

    (X, y), (Xv, yv) = feats7["train"], feats7["val"]
    clf = make_classifier("svm-adv", C=10.0, gamma="median").fit(X, y)
    clf.calibrate(Xv, yv, 0.05)
    model = GuardModel.from_classifier(extractor, clf)
    classes = list(clf.classes_)
    idx = lambda labels: torch.tensor([classes.index(v) for v in labels])
    test = data7["test"]
    return {"model": model, "f": torch.from_numpy(X).double(), "y": idx(y), "fv": torch.from_numpy(Xv).double(),
            "x": torch.from_numpy(test.images[::4]).float(), "yt": idx(test.labels[::4])}


@pytest.mark.parametrize("spec, why", [
    ("nope", "unknown defence 'nope'"),
    ("blur:radius=2", "blur has no parameter 'radius'"),
    ("noise:sigma=-1", "sigma"),
    ("multicrop:combine=median", "combine must be"),
    ("jpeg:quality=0", "quality"),
    ("jpeg:quality=50.5", "whole number"),
    ("smoothing:n=5", "cannot certify anything"),
    ("smoothing:sigma=0", "sigma"),
    ("open_set:tail_size=1", "tail_size"),
    ("bu:p=1", "dropout rate"),
    ("bu:samples=1", "samples"),
])
def test_bad_specs_are_refused_with_the_reason(spec, why):
    with pytest.raises(ValueError, match=why):
        make_defence(spec)


def test_specs_set_parameters():
    d = make_defence("multicrop:combine=vote:fraction=0.8")
    assert (d.combine, d.fraction, d.views) == ("vote", 0.8, 5)
    assert make_defence("smoothing:n=20:alpha=0.01").n == 20


def test_transforms_keep_shapes_and_randomised_ones_repeat_after_reseed():
    x = torch.rand(3, 32, 32, 3) * 255
    assert MultiCrop()(x).shape == (15, 32, 32, 3)
    for name in ("noise", "blur", "shift", "resize_pad", "jpeg"):
        t = make_defence(name)
        a = t(x)
        assert a.shape == x.shape and float(a.min()) >= -1e-4 and float(a.max()) <= 255 + 1e-4, name
        if t.randomized:
            assert not torch.equal(a, t(x)), name
            t.reseed()
            assert torch.equal(a, t(x)), name
    flat = torch.full((1, 16, 16, 3), 100.0)
    assert torch.allclose(make_defence("blur:sigma=2")(flat), flat)


def test_jpeg_is_differentiated_as_the_identity():
    x = (torch.rand(2, 16, 16, 3) * 255).requires_grad_(True)
    y = Jpeg(quality=30)(x)
    assert not torch.allclose(y, x.round())  # it does change the pixels
    (g,) = torch.autograd.grad((y * torch.arange(3.0)).sum(), x)
    assert torch.equal(g, torch.arange(3.0).expand_as(x))


def test_a_detected_crop_is_rejected_by_the_defended_model(guard):
    m = guard["model"]
    det = Mahalanobis(false_reject=0.1).fit(guard["f"], guard["y"], None)
    with torch.no_grad():
        det.calibrate(guard["fv"], m.head(guard["fv"]))
        dm = DefendedModel(m, [det])
        s_base, s_def = m(guard["x"]), dm(guard["x"])
        f = m.features(guard["x"]).double()
        flagged = det.flags(f, s_base)
        excess = (det.score(f, s_base) - det.threshold) / abs(det.threshold) + dm.margin
    assert torch.allclose(s_def, s_base - dm.penalty * torch.relu(excess)[:, None])  # the joint objective's hinge
    for i in range(len(flagged)):
        if flagged[i]:
            assert (s_def[i] < dm.thresholds).all()  # detected: every class below its threshold
    det.threshold = -1.0  # everything looks adversarial now
    with torch.no_grad():
        assert (dm(guard["x"]) < dm.thresholds).all()


def test_pipeline_names_the_stage_that_rejected(guard):
    pipe = DefencePipeline(guard["model"], [make_defence("mahalanobis")]).fit(guard["f"], guard["y"], guard["fv"])
    reasons = {d.reason for d in pipe.decide(guard["x"])}
    assert reasons <= {"accepted", "below_threshold", "detector"} and "accepted" in reasons
    pipe.detectors[0].threshold = -1.0
    decided = pipe.decide(guard["x"])
    assert {d.reason for d in decided} <= {"below_threshold", "detector"} and all(d.label == -1 for d in decided)
    assert all("mahalanobis" in d.stage_scores for d in decided)
    with pytest.raises(ValueError, match="use it alone"):
        DefencePipeline(guard["model"], [make_defence("smoothing"), make_defence("blur")])
    with pytest.raises(ValueError, match="listed twice"):
        DefencePipeline(guard["model"], [make_defence("blur"), make_defence("blur")])


def test_open_set_refuses_a_tail_longer_than_the_data_and_falls_back_when_it_cannot_fit(guard):
    m = guard["model"]
    with torch.no_grad():
        s = m.head(guard["f"])
    with pytest.raises(ValueError, match="tail_size 200 is larger"):
        OpenSetEVT(tail_size=200).fit(guard["f"], guard["y"], s)
    online = DefencePipeline(m, [OpenSetEVT(tail_size=200, strict=False)])
    online.fit(guard["f"][:10], guard["y"][:10])  # a class or two with a handful of examples
    assert online.notes and "not fitted" in online.notes[0]
    assert {d.reason for d in online.decide(guard["x"])} <= {"accepted", "below_threshold"}


def test_open_set_rejects_what_lies_far_from_every_class(guard):
    m = guard["model"]
    with torch.no_grad():
        s = m.head(guard["f"])
    evt = OpenSetEVT(tail_size=5, alpha=2).fit(guard["f"], guard["y"], s)
    train_flags = evt.score(None, s) > 0
    assert float(train_flags.double().mean()) < 0.5  # most training examples are known
    far = s[:4] + 50.0 * torch.linspace(-1, 1, s.shape[1], dtype=s.dtype)  # far from every class's mean
    assert bool((evt.score(None, far) > 0).all())


def test_open_set_refits_on_held_out_scores_and_then_rejects_fewer_clean_crops(guard, feats7):
    m = guard["model"]
    classes = m.classes
    yv = torch.tensor([classes.index(v) for v in feats7["val"][1]])
    on_train = DefencePipeline(m, [OpenSetEVT(tail_size=5)]).fit(guard["f"], guard["y"], guard["fv"])
    held_out = DefencePipeline(m, [OpenSetEVT(tail_size=5)]).fit(guard["f"], guard["y"], guard["fv"], yv)
    assert not torch.equal(on_train.detectors[0]._weib, held_out.detectors[0]._weib)
    rejected = [float(np.mean([d.reason == "open_set" for d in p.decide(guard["x"])])) for p in (on_train, held_out)]
    assert rejected[1] < rejected[0], rejected  # the SVM's training scores sit at its margins: too tight a fit
    with pytest.raises(ValueError, match=r"tail_size 20 is larger than class 0's .* held-out"):
        DefencePipeline(m, [OpenSetEVT(tail_size=20)]).fit(guard["f"], guard["y"], guard["fv"], yv)


def test_evaluate_defences_refuses_an_open_set_tail_longer_than_its_validation_split():
    from icub_guard.evaluation import DefenceEvalConfig

    with pytest.raises(ValueError, match="tail_size 20 is longer than the 15 validation crops"):
        DefenceEvalConfig(defences=("open_set",), n_val=15)
    assert DefenceEvalConfig(defences=("open_set:tail_size=5",), n_val=15).n_val == 15


def test_clopper_pearson_and_smoothing_certify_or_abstain(guard):
    assert clopper_pearson_lower(10, 10, 0.01) == pytest.approx(0.01 ** 0.1)
    assert clopper_pearson_lower(0, 10, 0.01) == 0.0
    x, y = guard["x"], guard["yt"].numpy()
    sm = DefencePipeline(guard["model"], [make_defence("smoothing:sigma=4:n0=8:n=64:alpha=0.01")])
    d = sm.decide(x)
    base = DefencePipeline(guard["model"], []).labels(x)
    certified = [i for i, di in enumerate(d) if di.reason == "accepted"]
    assert certified, "small noise: the smoothed guard should certify some crops"
    # a radius is never more than all n votes can give: sigma * Phi^-1(alpha^(1/n))
    from scipy.stats import norm

    top = 4 * norm.ppf(0.01 ** (1 / 64))
    assert all(0 < d[i].radius <= top + 1e-9 for i in certified)
    agree = [d[i].label == base[i] for i in certified if base[i] >= 0]
    assert agree and np.mean(agree) >= 0.8  # small noise: where the bare guard accepts, mostly the same class
    loud = DefencePipeline(guard["model"], [make_defence("smoothing:sigma=255:n0=8:n=64:alpha=0.01")]).decide(x)
    assert sum(di.radius or 0 for di in loud if di.label == -1) == 0
    assert np.mean([di.label == yi for di, yi in zip(loud, y, strict=True)]) <= np.mean(base == y)


def test_the_adaptive_attacker_differentiates_through_the_defences(guard):
    """EOT over noise and BPDA over JPEG: the attack on the defended model must beat the defence's noise floor."""
    pipe = DefencePipeline(guard["model"], [make_defence("noise:sigma=4"), make_defence("jpeg")])
    x, y = guard["x"][:4], guard["yt"][:4]
    r = PaperAttack(pipe.attack_model(eot=2), eps=3000.0, steps=8, reject_aware=True)(x, y)
    assert float(r.norms["l2"].max()) <= 3000.0 + 1e-3
    adv = torch.from_numpy(r.images()).float()
    fooled = (pipe.labels(adv) >= 0) & (pipe.labels(adv) != y.numpy())
    assert fooled.any(), "at d_max 3000 the adaptive attack should fool the noise+JPEG guard on some crop"


def test_orthogonal_pgd_breaks_a_detector_that_the_penalised_objective_stalls_on(guard):
    """From the clean crop, Algorithm 1 on the penalised joint objective stalls at the detector; orthogonal PGD
    (Bryniarski et al.) takes the two goals in turn and gets past it, and what it calls a success the pipeline
    accepts with a wrong label."""
    pipe = DefencePipeline(guard["model"], [make_defence("mahalanobis")]).fit(guard["f"], guard["y"], guard["fv"])
    x, y = guard["x"], guard["yt"]
    fooled = {}
    for name, attack in (("penalised", PaperAttack(pipe.attack_model(), eps=1000.0, steps=8, reject_aware=True)),
                         ("orthogonal", OrthogonalPGD(pipe.defended, 1000.0, steps=8, reject_aware=True))):
        r = attack(x, y)
        assert float(r.norms["l2"].max()) <= 1000.0 + 1e-3
        labels = pipe.labels(torch.from_numpy(r.images()).float())
        fooled[name] = (labels >= 0) & (labels != y.numpy())
        if name == "orthogonal":
            assert fooled[name][r.success.numpy()].all()
    assert fooled["orthogonal"].sum() >= 2 * fooled["penalised"].sum() + 4, fooled  # measured: 22 vs 6 of 28


def test_orthogonal_pgd_refuses_a_model_without_detectors_and_bad_parameters(guard):
    with pytest.raises(ValueError, match="guarded by detectors"):
        OrthogonalPGD(guard["model"], 1000.0)
    dm = DefencePipeline(guard["model"], [make_defence("kde")]).fit(guard["f"], guard["y"], guard["fv"]).defended
    for kw, why in (({"eot": 0}, "eot"), ({"step_size": -1.0}, "step_size"), ({"norm": "l3"}, "norm")):
        with pytest.raises(ValueError, match=why):
            OrthogonalPGD(dm, 1000.0, **kw)


def test_orthogonal_steps_leave_the_other_goal_alone():
    """Not yet fooled: the step has no component along the detectors' gradient; fooled but detected: it
    descends the detectors' excess with no component along the classifier's gradient; fooled and undetected (no
    detector gradient there): plain ascent on the classifier's gain."""
    attack = OrthogonalPGD.__new__(OrthogonalPGD)
    attack.orthogonal = True
    g = torch.Generator().manual_seed(0)
    g_c, g_d = torch.randn(3, 4, 4, 3, generator=g), torch.randn(3, 4, 4, 3, generator=g)
    g_d[2] = 0.0
    fooled = torch.tensor([False, True, True])
    rel = torch.tensor([[0.5], [0.5], [-0.5]])  # detected, detected, not
    d = attack._direction(fooled, rel, g_c, g_d).reshape(3, -1)
    c, e = g_c.reshape(3, -1), g_d.reshape(3, -1)
    assert abs(float(d[0] @ e[0])) < 1e-4 and float(d[0] @ c[0]) > 0
    assert abs(float(d[1] @ c[1])) < 1e-4 and float(d[1] @ e[1]) < 0
    assert torch.equal(d[2], c[2])


def test_a_randomised_detectors_draws_are_averaged_on_one_pass(guard):
    pipe = DefencePipeline(guard["model"], [make_defence("bu:samples=4")]).fit(guard["f"], guard["y"], guard["fv"])
    dm, bu = pipe.defended, pipe.detectors[0]
    x = guard["x"][:3]
    with torch.no_grad():
        f, s, _ = dm.parts(x)
        bu.reseed()
        by_hand = torch.stack([bu.score(f, s) for _ in range(5)]).mean(0)
        bu.reseed()
        assert torch.allclose(dm.parts(x, draws=5)[2]["bu"], by_hand)


def test_evaluate_defences_runs_end_to_end_and_reports_both_attackers(tmp_path):
    from icub_guard.evaluation import DefenceEvalConfig, run_defence_evaluation, write_defence_report

    cfg = DefenceEvalConfig(defences=("multicrop", "mahalanobis", "smoothing:n0=4:n=16:alpha=0.05",
                                      "adv_augment:steps=2"), n_train=6,
                            n_val=4, n_test=1, d_max=(0.0, 2000.0), steps=3, eot=2, table_d_max=2000.0,
                            backbone="simnet", input_size=32, device="cpu", radii=(0.0, 10.0), ensemble_steps=2,
                            square_queries=10, binarization=1)  # SimNet at 32 px: 14 s here, 77 s on AlexNet at 64
    res = run_defence_evaluation(cfg)
    assert [r.name for r in res.defences] == list(cfg.defences)
    for r in res.defences:
        assert set(r.accuracy) == {"non_adaptive", "adaptive", "adaptive_cold_start"}
        assert len(r.accuracy["adaptive"]) == 2
        # per crop the best of two starts and the unaware crop: above neither the clean start nor the unaware attack
        for other in ("adaptive_cold_start", "non_adaptive"):
            assert all(a <= c + 1e-12 for a, c in zip(r.accuracy["adaptive"], r.accuracy[other], strict=True))
        # a crop broken within a smaller budget stays broken: the adaptive curve never rises
        assert all(b <= a + 1e-12 for a, b in zip(r.accuracy["adaptive"], r.accuracy["adaptive"][1:]))
    assert res.defences[1].roc_auc is not None and 0 <= res.defences[1].roc_auc <= 1
    assert res.defences[2].certified is not None and len(res.defences[2].certified) == 2
    checks = [c["check"] for c in res.sanity]
    for spec in cfg.defences:  # the ensemble's checks against every defence, in the report
        assert f"{spec}: a gradient-free attack is not stronger than the adaptive ensemble" in checks
        # the binarization test where its construction expresses the decision; elsewhere a note says why not
        expressible = spec in ("multicrop", "adv_augment:steps=2")
        assert sum(c.startswith(f"{spec}: ") for c in checks) == 3 + expressible
        assert (f"{spec}: binarization test of the adaptive attack" in checks) == expressible
        r = next(r for r in res.defences if r.name == spec)
        assert any(n.startswith("no binarization test") for n in r.notes) != expressible
    multicrop = next(c for c in res.sanity if c["check"] == "multicrop: binarization test of the adaptive attack")
    assert "found for" in multicrop["detail"]  # a transform: the test runs (smoothing and detectors: not applicable)
    for r in res.defences:  # the ensemble's members and Stutz et al.'s robust error, per d_max
        assert set(r.ensemble_wins) == {"adaptive", "apgd-ce", "apgd-t"}
        assert all(len(v) == 2 for v in r.ensemble_wins.values())
        assert set(r.robust_error) == {"non_adaptive", "adaptive"} and all(
            0 <= v <= 1 for v in r.robust_error["adaptive"])
    files = write_defence_report(res, tmp_path)
    md = (tmp_path / files["markdown"]).read_text()
    assert "Günther" in md and "mahalanobis" in md and (tmp_path / "defences.png").exists()


def test_the_adaptive_attacker_keeps_whatever_fooled_the_defence():
    from icub_guard.evaluation.defences import _worst

    y = np.array([0, 0, 0, 0, 0])
    crops = {k: np.full((5, 1, 1, 3), v, np.uint8) for v, k in enumerate(("before", "cold", "warm", "unaware"))}
    before = (np.array([0, 1, 0, 0, -1]), crops["before"])  # crop 1 fooled the defence at the smaller d_max
    cold = (np.array([0, 0, 2, 0, -1]), crops["cold"])  # crop 2: the clean start fools it
    warm = (np.array([0, 0, 0, 3, -1]), crops["warm"])  # crop 3: the warm start does
    unaware = (np.array([4, 0, 0, 0, -1]), crops["unaware"])  # crop 0: only the unaware attack's crop gets past
    both = _worst(cold, warm, y)
    assert both[0].tolist() == [0, 0, 2, 3, -1]
    best = _worst(_worst(both, unaware, y), before, y)
    assert best[0].tolist() == [4, 1, 2, 3, -1]  # every crop that any candidate broke stays broken
    # ... and the crop published is the one that broke it (the ensemble starts from these)
    assert best[1][:, 0, 0, 0].tolist() == [3, 0, 1, 2, 1]


def test_evaluate_defences_refuses_an_unknown_defence_before_loading_anything():
    from icub_guard.cli import main

    assert main(["-q", "evaluate", "--defences", "blur,nope"]) == 2
    with pytest.raises(GuardError):
        from icub_guard.cli import build_parser, cmd_evaluate

        cmd_evaluate(build_parser().parse_args(["evaluate", "--defences", "jpeg:quality=0", "--weights", "random"]))


def test_online_defences_review_the_guards_decisions_and_refit_after_learning(trained, data7):
    from icub_guard.core.session import SessionConfig, TeachingSession
    from icub_guard.defences.online import OnlineDefences, parse_specs

    with pytest.raises(ValueError, match="unknown defence"):
        parse_specs("blur,nope")
    assert parse_specs(" multicrop ") == ["multicrop"] and parse_specs("") == []
    for bad in (",,,,", "multicrop,", "multicrop\x00,bogus", "multicrop\n"):  # empty items, control characters
        with pytest.raises(ValueError):
            parse_specs(bad)
    crops = data7["train"].images[::12]  # examples it was trained on: half of them lie past the median threshold
    online = OnlineDefences(["mahalanobis:false_reject=0.5"])
    feats = trained.features(crops)
    base = trained.classify_features(feats)
    reviewed = [online.review(trained, d, c) for d, c in zip(base, crops, strict=True)]
    assert all("mahalanobis" in r.stages for r in reviewed)
    again = [online.review(trained, d, c, f) for d, c, f in zip(base, crops, feats, strict=True)]
    assert [r.reason for r in again] == [r.reason for r in reviewed]  # the guard's features spare a forward
    assert all(a.stages["mahalanobis"] == pytest.approx(r.stages["mahalanobis"], rel=1e-4)
               for a, r in zip(again, reviewed, strict=True))
    assert any(r.reason == "detector" for r in reviewed)
    assert all(r.label == "unknown" and not r.accepted for r in reviewed if r.reason == "detector")
    fitted_on = online._model
    trained.learn(feats[:1], data7["train"].labels[0])
    online.review(trained, base[0], crops[0])
    assert online._model is not fitted_on  # refitted on the new model
    session = TeachingSession(trained, SessionConfig.defaults())
    step = session.observe(feats[0], decision=reviewed[0])
    assert step.decision is reviewed[0]
    payload = session.decision_payload(step)
    assert payload["stages"] == reviewed[0].stages and payload["reason"] == reviewed[0].reason
    few = OnlineDefences(["open_set:tail_size=50:strict=false"])
    r = few.review(trained, base[0], crops[0])
    assert r.reason in ("accepted", "below_threshold") and not r.notes  # enough examples: fitted
    assert OnlineDefences([]).review(trained, base[0], crops[0]) is base[0]


def test_online_open_set_is_fitted_on_held_out_scores_and_rejects_fewer_clean_crops(trained, data7, monkeypatch):
    """Online there is no validation split: open_set is refitted on each example's scores from a classifier
    fitted without it (k-fold). Fitted on the guard's own training scores it calls far more clean crops unknown."""
    from icub_guard.defences.online import OnlineDefences

    crops = data7["val"].images
    feats = trained.features(crops)
    base = trained.classify_features(feats)
    rejected = {}
    for fit in ("held-out", "training"):
        online = OnlineDefences(["open_set:tail_size=5:strict=false"])
        if fit == "training":
            monkeypatch.setattr(online, "_fit_held_out", lambda *a: None)
        reviewed = [online.review(trained, d, c, f) for d, c, f in zip(base, crops, feats, strict=True)]
        assert not reviewed[0].notes
        rejected[fit] = np.mean([r.reason == "open_set" for r in reviewed])
    assert rejected["held-out"] <= rejected["training"] - 0.15, rejected  # measured: 0.12 vs 0.40


def test_online_open_set_keeps_the_training_fit_where_a_class_is_too_small_to_hold_out(extractor, feats7):
    from icub_guard.defences.online import OnlineDefences

    from conftest import make_recognizer

    X, y = feats7["train"]
    keep = np.r_[np.flatnonzero(y != y[0]), np.flatnonzero(y == y[0])[:3]]  # three examples of the first class
    rec = make_recognizer(extractor)
    rec.fit(X[keep], y[keep], {"C": 10.0, "gamma": "median"})
    online = OnlineDefences(["open_set:tail_size=3:strict=false"])
    d = rec.classify_features(X[:1])[0]
    r = online.review(rec, d, np.zeros((64, 64, 3), np.uint8), X[0])
    assert r.reason != "open_set" or r.stages  # it decided, with the training fit
    assert any("open_set: fitted on training scores" in n for n in r.notes), r.notes


def test_kde_scores_atypical_features_higher(guard):
    m = guard["model"]
    with torch.no_grad():
        s = m.head(guard["f"])
        kde = make_defence("kde:false_reject=0.1").fit(guard["f"], guard["y"], s)
        kde.calibrate(guard["fv"], m.head(guard["fv"]))
        typical = kde.score(guard["f"][:8], s[:8])
        odd = torch.nn.functional.normalize(torch.rand(8, guard["f"].shape[1], dtype=torch.float64), dim=1)
        atypical = kde.score(odd, m.head(odd))
    assert float(atypical.min()) > float(typical.max())
    assert bool((atypical > kde.threshold).all())
    with pytest.raises(ValueError, match="two classes"):
        make_defence("kde").fit(guard["f"][:3], guard["y"][:3] * 0, s[:3])


def test_bu_scores_the_spread_of_the_classifiers_scores_under_dropout(guard):
    m, f, y = guard["model"], guard["f"], guard["y"]
    with pytest.raises(ValueError, match="bind"):
        make_defence("bu").fit(f, y, None)  # it needs the head it reviews
    pipe = DefencePipeline(m, [make_defence("bu:samples=8:false_reject=0.1")]).fit(f, y, guard["fv"])
    bu = pipe.detectors[0]
    assert bu.fitted and bu.randomized
    with torch.no_grad():
        s = m.head(f[:6])
        bu.reseed()
        a, b = bu.score(f[:6], s), bu.score(f[:6], s)
        bu.reseed()
        assert torch.equal(bu.score(f[:6], s), a) and not torch.equal(a, b)  # fresh masks per call, reproducible
        assert bool((a >= 0).all())
        # Feinman's U(x) by hand: mean squared norm minus squared norm of the mean, over the same masks
        bu.reseed()
        keep = torch.rand((8, 1, f.shape[1]), generator=bu._gen) >= bu.p
        dropped = torch.nn.functional.normalize((f[None, :6] * keep).reshape(-1, f.shape[1]), dim=1)
        st = m.head(dropped).reshape(8, 6, -1)
        expected = st.square().sum(2).mean(0) - st.mean(0).square().sum(1)
        assert torch.allclose(a, expected.to(a.dtype), atol=1e-9)
    decided = pipe.decide(guard["x"])
    assert all("bu" in d.stage_scores for d in decided)
    assert pipe.decide(guard["x"])[0].stage_scores != decided[0].stage_scores  # fresh masks for every decision
    pipe.fresh_noise = False  # an evaluation's common random numbers: a decision is reproducible
    assert pipe.decide(guard["x"])[0].stage_scores == pipe.decide(guard["x"])[0].stage_scores


def test_adversarial_augmentation_learns_the_attacked_crop_under_the_same_label_and_decision(trained, data7):
    from icub_guard.core.guard import Guard, GuardConfig
    from icub_guard.defences.online import OnlineDefences

    for bad, why in (("adv_augment:attack=noise", "gradient attack"), ("adv_augment:norm=l0", "norm"),
                     ("adv_augment:eps=0", "eps")):
        with pytest.raises(ValueError, match=why):
            make_defence(bad)
    online = OnlineDefences(["adv_augment:eps=800:steps=3"])
    assert online.augment is not None and not online.decides
    crop, label = data7["test"].images[0], data7["test"].labels[0]
    base = trained.classify_features(trained.features(crop[None]))[0]
    assert online.review(trained, base, crop) is base  # it shapes learning, not decisions
    adv = online.augment.attacked(trained.guard_model(), crop[None], [trained.classes.index(label)])
    assert adv.dtype == np.uint8 and np.linalg.norm(adv[0].astype(float) - crop) <= 800 + 1e-6
    assert np.abs(adv[0].astype(int) - crop).max() > 0
    guard = Guard(trained, GuardConfig(trained.config, defences=["adv_augment:eps=800:steps=3"]))
    step = guard.judge(crop)  # the guard keeps the crop with the decision: the label's augmentation needs it
    n = trained.n_examples
    out = guard.feedback(f'{{"decision_id": {step.decision_id}, "label": "{label}", "teacher": "ana"}}')
    assert out.action == "learned" and out.augmented and out.problem is None
    assert trained.n_examples == n + 2 and guard.session.counts["augmented"] == 1
    assert sorted(p.source for p in guard.session.provenance.values() if p.decision == step.decision_id) == \
        ["adversarial", "feedback"]
    assert len(guard.forget_decision(str(step.decision_id))) == 2 and trained.n_examples == n
    plain = Guard(trained, GuardConfig(trained.config))  # without adv_augment a label teaches one example
    step = plain.judge(crop)
    assert not plain.feedback(f'{{"decision_id": {step.decision_id}, "label": "{label}"}}').augmented
    assert trained.n_examples == n + 1


class _NoiseRecorder(torch.nn.Module):
    """A base guard for smoothing that keeps the noisy crops it is given; its class is the sign of their mean
    offset from mid-grey, so its votes follow the noise."""

    def __init__(self):
        super().__init__()
        self.classes, self.reject, self.seen = ["a", "b"], False, []
        self.register_buffer("thresholds", torch.zeros(2))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        d = (x - 128.0).flatten(1).mean(1)
        return torch.stack([d, -d], 1)


def test_smoothing_draws_fresh_noise_for_every_decision():
    """Restarting the stream per decision gave every frame the same draws, which an attacker knowing the seed
    optimises against: two decisions on the same crop must see different noise (an evaluation's pipeline, with
    common random numbers, sees the same)."""
    x = torch.full((2, 8, 8, 3), 128.0)
    m = _NoiseRecorder()
    pipe = DefencePipeline(m, [make_defence("smoothing:sigma=4:n0=4:n=16:alpha=0.05", seed=3)])
    pipe.decide(x)
    first, m.seen = torch.cat(m.seen), []
    pipe.decide(x)
    second = torch.cat(m.seen)
    assert first.shape == second.shape and not torch.equal(first, second)
    sm = pipe.smoothing
    a = sm._counts(m, x, 64)
    assert a.sum() == 2 * 64 and not np.array_equal(a, sm._counts(m, x, 64))  # different votes too
    m.seen = []
    crn = DefencePipeline(m, [make_defence("smoothing:sigma=4:n0=4:n=16:alpha=0.05", seed=3)], fresh_noise=False)
    crn.decide(x)
    first, m.seen = torch.cat(m.seen), []
    crn.decide(x)
    assert torch.equal(first, torch.cat(m.seen))


def test_smoothing_with_the_same_seed_repeats_the_same_sequence_of_decisions():
    x = torch.full((2, 8, 8, 3), 128.0)

    def run(seed):
        m = _NoiseRecorder()
        pipe = DefencePipeline(m, [make_defence("smoothing:sigma=4:n0=4:n=16:alpha=0.05", seed=seed)])
        decisions = [[(d.label, d.reason, d.radius) for d in pipe.decide(x)] for _ in range(3)]
        return decisions, torch.cat(m.seen)

    (da, na), (db, nb), (_, nc) = run(7), run(7), run(8)
    assert da == db and torch.equal(na, nb)
    assert not torch.equal(na, nc)


def test_smoothing_certifies_cohens_radius_for_its_counts(monkeypatch):
    """Cohen et al.'s CERTIFY: the n0 votes choose the class, the n votes bound its probability from below
    (one-sided Clopper–Pearson, here solved from the binomial tail itself), R = σ·Φ⁻¹(p_A) above 1/2."""
    from types import SimpleNamespace

    from scipy.optimize import brentq
    from scipy.stats import binom, norm

    sigma, n, alpha = 25.0, 100, 0.001
    sm = make_defence(f"smoothing:sigma={sigma}:n0=10:n={n}:alpha={alpha}")
    choose = np.array([[0, 10, 0], [9, 1, 0], [0, 0, 10], [6, 4, 0]])  # class 1, class 0, rejected, class 0
    estimate = np.array([[1, 99, 0], [60, 40, 0], [0, 5, 95], [90, 10, 0]])
    calls = iter([choose, estimate])
    monkeypatch.setattr(sm, "_counts", lambda model, x, num: next(calls))
    label, radius, reasons = sm.certify(SimpleNamespace(classes=["a", "b"]), torch.zeros(4, 1, 1, 3))

    def lower(k):  # the p at which k or more of n votes has probability alpha
        return brentq(lambda p: binom.sf(k - 1, n, p) - alpha, 1e-12, 1 - 1e-12, xtol=1e-14)

    assert lower(60) < 0.5 < lower(90)
    assert label.tolist() == [1, -1, -1, 0]
    assert reasons == ["accepted", "not_certified", "below_threshold", "accepted"]
    assert radius[0] == pytest.approx(sigma * norm.ppf(lower(99)), rel=1e-6)
    assert radius[3] == pytest.approx(sigma * norm.ppf(lower(90)), rel=1e-6)
    assert radius[1] == radius[2] == 0
