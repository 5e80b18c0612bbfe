"""Attacks: constraints hold exactly, Algorithm 1 behaves as in the paper's Fig. 2, attacks work."""

import numpy as np
import pytest
import torch

from icub_guard.attacks import ATTACKS, PaperAttack, UniversalPerturbation, make_attack, project, rect_mask
from icub_guard.attacks.constraints import _project_l1
from icub_guard.core import GuardModel, make_classifier
from icub_guard.core.kernels import KernelScores

from conftest import shrink

# -------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def small(data7, small7, small_feats7):
    """A small real chain: 32 px crops → SimNet (random, 32 px input; `small7`) → SVM scores."""
    fx, (F, _) = small7.fx, small_feats7["train"]
    tr, te = data7["train"], data7["test"]
    out = {}
    for name in ("svm", "svm-rbf", "svm-adv"):
        clf = make_classifier(name, C=10.0).fit(F, tr.labels)
        out[name] = GuardModel.from_classifier(fx, clf)
    classes = list(out["svm"].classes)
    idx = np.arange(0, len(te), 4)  # 4 crops per class
    x = torch.from_numpy(shrink(te.images[idx])).float()
    y = torch.tensor([classes.index(v) for v in te.labels[idx]])
    return out, x, y


def clean_accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


class Toy2D(torch.nn.Module):
    """A 2-D RBF-SVM seen as a model of 1×1 "images": channels 0, 1 are the coordinates."""

    def __init__(self, clf, reject=False):
        super().__init__()
        self.head = clf.torch_scores()
        self.reject = reject
        self.register_buffer("thresholds", torch.zeros(len(clf.classes_), dtype=torch.float64))

    def forward(self, x):
        return self.head(x[:, 0, 0, :2] / 100.0)


def _toy(centres):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c, 0.08, (30, 2)) for c in centres]).astype(np.float32)
    y = np.repeat(np.array(["A", "B", "C"], dtype=object), 30)
    return make_classifier("svm-adv", C=10.0, gamma=8.0).fit(X, y), np.asarray(centres)


@pytest.fixture(scope="module")
def toy():
    """A in the middle, B to its left, C to its right: every class reachable by gradient."""
    return _toy([[1.2, 1.2], [0.75, 1.2], [1.65, 1.2]])


@pytest.fixture(scope="module")
def toy_far():
    """A and B close together, C far away across an empty region."""
    return _toy([[0.6, 0.6], [1.2, 0.6], [2.2, 2.0]])


def as_image(p):
    """2-D points (in 0..2.55) → 1×1×3 "images" in 0..255 (channel 2 unused and masked)."""
    p = np.atleast_2d(p)
    return torch.tensor(np.c_[p * 100.0, np.full(len(p), 128.0)][:, None, None, :], dtype=torch.float32)


COORDS = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)

# ---------------------------------------------------------------- constraints


@pytest.mark.parametrize("norm", ["l1", "l2", "linf"])
def test_project_enforces_ball_box_and_mask(norm, rng):
    x0 = torch.tensor(rng.uniform(0, 255, (5, 8, 8, 3)), dtype=torch.float32)
    xa = x0 + torch.tensor(rng.normal(0, 80, x0.shape), dtype=torch.float32)
    mask = rect_mask((8, 8), (2, 2, 3, 4))
    out = project(xa, x0, 50.0, norm, mask)
    d = (out - x0).flatten(1)
    n = {"l1": d.abs().sum(1), "l2": d.norm(dim=1), "linf": d.abs().amax(1)}[norm]
    assert (n <= 50.0 + 1e-3).all()
    assert out.min() >= 0 and out.max() <= 255
    assert ((out - x0) * (1 - mask)).abs().max() == 0
    inside = x0 + 0.01 * (xa - x0) * mask
    assert torch.allclose(project(inside, x0, 50.0, norm, mask), inside.clamp(0, 255))


def test_l1_projection_is_the_euclidean_projection(rng):
    d = torch.tensor(rng.normal(0, 1, (3, 20)))
    p = _project_l1(d, torch.tensor([2.0, 2.0, 2.0], dtype=torch.float64))
    assert torch.allclose(p.abs().sum(1), torch.full((3,), 2.0, dtype=torch.float64))
    # optimality: p = sign(d)·max(|d| − θ, 0) for one θ ≥ 0 per row
    for row_d, row_p in zip(d, p, strict=True):
        theta = (row_d.abs() - row_p.abs())[row_p != 0]
        assert torch.allclose(theta, theta[0].expand_as(theta)) and theta[0] >= 0
        assert (row_d.abs()[row_p == 0] <= theta[0] + 1e-12).all()


ALL = sorted(ATTACKS)
BUDGET = {"apgd": {"eps": 300.0}, "apgd-t": {"eps": 300.0}, "square": {"eps": 300.0}}  # attacks that need one


@pytest.mark.parametrize("name", ALL)
def test_every_attack_respects_its_constraints(small, name):
    models, x, y = small
    eps = {"fgsm": 8.0, "bim": 8.0}.get(name, 300.0)
    mask = rect_mask((32, 32), (8, 8, 16, 16))
    kwargs = {"steps": 3} if name in ("paper", "bim", "pgd", "deepfool", "cw", "fooling", "apgd", "apgd-t") else {}
    if name == "cw":
        kwargs["search_steps"] = 1
    if name not in ("fooling",):
        kwargs["eps"] = eps
    atk = make_attack(name, models["svm-rbf"], mask=mask, **kwargs)
    target = (y + 1) % 7 if name == "fooling" else None
    r = atk(x, y, target)
    d = (r.x_adv - x).flatten(1)
    norm = atk.norm
    if atk.eps is not None:
        n = {"l1": d.abs().sum(1), "l2": d.norm(dim=1), "linf": d.abs().amax(1)}[norm]
        assert (n <= atk.eps + 1e-3).all(), (name, n.max())
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 255
    assert ((r.x_adv - x) * (1 - mask)).abs().max() == 0, name
    for k in ("l0", "l1", "l2", "linf"):
        assert r.norms[k].shape == (len(x),)
    assert torch.allclose(r.norms["l2"], d.norm(dim=1))
    assert r.success.dtype == torch.bool and r.images().dtype == np.uint8


# ------------------------------------------------------- Algorithm 1 in 2-D


def test_paper_attack_2d_generic_moves_to_nearest_other_class(toy):
    clf, centres = toy
    model = Toy2D(clf)
    start = centres[0] - [0.1, 0.0]  # an A point; B (left) is the nearest other class
    r = PaperAttack(model, eps=100.0, steps=100, mask=COORDS)(as_image(start), torch.tensor([0]))
    end = r.x_adv[0, 0, 0, :2].numpy() / 100.0
    assert clf.classes_[model(r.x_adv).argmax(1)[0]] == "B"
    assert np.linalg.norm(end - centres[1]) < np.linalg.norm(start - centres[1])
    assert np.linalg.norm(end - start) <= 1.0 + 1e-4


def test_paper_attack_2d_specific_moves_to_target(toy):
    clf, centres = toy
    model = Toy2D(clf)
    start = centres[0] - [0.1, 0.0]  # nearer to B, but the target is C
    r = PaperAttack(model, eps=150.0, steps=150, mask=COORDS)(as_image(start), torch.tensor([0]), torch.tensor([2]))
    end = r.x_adv[0, 0, 0, :2].numpy() / 100.0
    assert r.success.all() and clf.classes_[model(r.x_adv).argmax(1)[0]] == "C"
    assert np.linalg.norm(end - centres[2]) < 0.5 * np.linalg.norm(start - centres[2])


def test_specific_attack_on_a_far_target_ends_in_a_blind_spot(toy_far):
    """Towards far class C the reject-blind attack (the paper's) only needs f_C to win: it runs
    into the empty region where C's bias beats the others — a blind spot SVM-adv rejects. The
    reject-aware attacker gets no gradient there (RBF kernels vanish) and is not accepted either."""
    clf, centres = toy_far
    start, y, t = centres[0], torch.tensor([0]), torch.tensor([2])
    blind = PaperAttack(Toy2D(clf), eps=255.0, steps=200, mask=COORDS)(as_image(start), y, t)
    assert clf.classes_[Toy2D(clf)(blind.x_adv).argmax(1)[0]] == "C"
    assert clf.predict(blind.x_adv[0, 0, 0, :2].numpy()[None] / 100.0)[0] == "unknown"
    aware = PaperAttack(Toy2D(clf, reject=True), eps=255.0, steps=200, mask=COORDS, reject_aware=True)(
        as_image(start), y, t)
    assert not aware.success.any()


def test_reject_option_catches_blind_spot_points(toy_far):
    """Far from all training data every RBF score falls to its bias: SVM-RBF still names
    a class (a misclassification), SVM-adv says unknown."""
    clf, centres = toy_far
    rng = np.random.default_rng(1)
    far = rng.uniform([0.0, 1.6], [1.0, 2.5], (50, 2)).astype(np.float32)  # a region with no training data
    far = far[np.min(np.linalg.norm(far[:, None] - centres[None], axis=2), axis=1) > 0.6]
    assert len(far) > 10
    state = clf.get_state()
    rbf = make_classifier("svm-rbf", C=10.0, gamma=8.0).fit(state["X"], clf.classes_[state["label"]])
    # no class claims these points (every score below 0), yet SVM-RBF names one; SVM-adv does not
    assert (rbf.decision_function(far).max(1) < 0).all()
    assert (clf.predict(far) == "unknown").all()


def test_reject_aware_attacker_beats_reject_blind_on_defended_model(toy):
    clf, centres = toy
    model = Toy2D(clf, reject=True)
    x = as_image(centres[0] + np.random.default_rng(2).normal(0, 0.03, (10, 2)))
    y = torch.zeros(10, dtype=torch.long)
    t = torch.full((10,), 2)
    blind = PaperAttack(model, eps=80.0, steps=60, mask=COORDS)(x, y, t)
    aware = PaperAttack(model, eps=80.0, steps=60, mask=COORDS, reject_aware=True)(x, y, t)
    assert aware.success_rate > 0 and aware.success_rate >= blind.success_rate


# ------------------------------------------------------------ effectiveness


@pytest.mark.parametrize("name,params", [
    ("paper", {"eps": 1500.0, "steps": 15}), ("fgsm", {"eps": 16.0}), ("fgv", {"eps": 1500.0}),
    ("hotcold", {"eps": 1500.0}), ("bim", {"eps": 16.0, "steps": 8}), ("pgd", {"eps": 16.0, "steps": 8}),
    ("deepfool", {"steps": 20}), ("cw", {"steps": 40, "search_steps": 2, "c": 10.0}), ("negative", {}),
])
def test_each_attack_lowers_accuracy(small, name, params):
    models, x, y = small
    model = models["svm-rbf"]
    clean = clean_accuracy(model, x, y)
    r = make_attack(name, model, **params)(x, y)
    adv = clean_accuracy(model, r.x_adv, y)
    assert clean > 0.6
    assert adv < clean - 0.2, (name, clean, adv)


def test_noise_is_weaker_than_the_attack_at_the_same_distance(small):
    models, x, y = small
    model = models["svm-rbf"]
    noise = make_attack("noise", model, eps=600.0)(x, y)
    attack = make_attack("paper", model, eps=600.0, steps=15)(x, y)
    # the same distance, up to the box clipping of saturated (white) pixels
    assert ((noise.norms["l2"] > 500.0) & (noise.norms["l2"] <= 600.0 + 1e-3)).all()
    assert clean_accuracy(model, noise.x_adv, y) > clean_accuracy(model, attack.x_adv, y) + 0.2


def test_universal_perturbation_is_one_pattern_that_fools_a_linear_svm(small):
    models, x, y = small
    atk = UniversalPerturbation(models["svm"], eps=3000.0, passes=10)
    r = atk(x, y)
    v = atk.perturbation
    assert v.shape == (1, 32, 32, 3)
    unclipped = ((x + v) > 0) & ((x + v) < 255)  # where the box did not cut the pattern
    assert unclipped.float().mean() > 0.5
    assert torch.allclose((r.x_adv - x)[unclipped], v.expand_as(x)[unclipped], atol=1e-3)  # the same v for all
    # one pattern for seven classes is a hard ask (steps towards different classes partly cancel)
    assert clean_accuracy(models["svm"], r.x_adv, y) < clean_accuracy(models["svm"], x, y) - 0.1


def test_fooling_images_from_noise_reach_the_target(small):
    models, x, y = small
    t = (y + 3) % 7
    r = make_attack("fooling", models["svm-rbf"], steps=40, confidence=0.2)(x, None, t)
    assert r.success_rate >= 0.8


def test_error_specific_attacks_hit_targets(small):
    models, x, y = small
    t = (y + 1) % 7
    r = make_attack("paper", models["svm-rbf"], eps=3000.0, steps=25)(x, y, t)
    assert r.success_rate >= 0.7


def test_sweep_warm_starts_and_accuracy_falls(small):
    models, x, y = small
    model = models["svm-rbf"]
    res = PaperAttack(model, steps=8).sweep(x, y, [250.0, 1000.0, 2500.0])
    accs = [clean_accuracy(model, r.x_adv, y) for r in res]
    for r, e in zip(res, [250.0, 1000.0, 2500.0], strict=True):
        assert (r.norms["l2"] <= e + 1e-3).all()
    assert accs[0] >= accs[1] >= accs[2] - 1 / len(y)


def test_attacks_are_reproducible_with_a_seed(small):
    models, x, y = small
    a = make_attack("pgd", models["svm-rbf"], eps=500.0, norm="l2", steps=3, seed=7)(x, y).x_adv
    b = make_attack("pgd", models["svm-rbf"], eps=500.0, norm="l2", steps=3, seed=7)(x, y).x_adv
    c = make_attack("pgd", models["svm-rbf"], eps=500.0, norm="l2", steps=3, seed=8)(x, y).x_adv
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_attack_input_errors(small):
    models, x, y = small
    atk = make_attack("paper", models["svm-rbf"], eps=100.0)
    with pytest.raises(ValueError, match="N×H×W×3"):
        atk(x[:, :, :, :2], y)
    with pytest.raises(ValueError, match="box"):
        atk(x + 300, y)
    with pytest.raises(ValueError, match="labels"):
        atk(x, y[:2])
    with pytest.raises(ValueError, match="untargeted"):
        make_attack("noise", models["svm-rbf"], eps=10.0)(x, y, y)
    with pytest.raises(ValueError, match="unknown attack"):
        make_attack("nope", models["svm-rbf"])
    with pytest.raises(ValueError, match="norm"):
        make_attack("paper", models["svm-rbf"], norm="l3")


def test_attack_runs_on_any_scores_module():
    """A library model (no thresholds): success is plain misclassification."""
    lin = KernelScores("linear", 0.0, np.eye(3, 12), np.eye(3), np.zeros(3))
    model = torch.nn.Sequential(torch.nn.Flatten(1), lin)
    x = torch.zeros(2, 2, 2, 3)
    x[0, 0, 0, 0] = 200.0  # class 0
    x[1, 0, 0, 1] = 200.0  # class 1
    r = PaperAttack(model, eps=300.0, steps=30)(x, torch.tensor([0, 1]))
    assert r.success.all() and r.accepted.all()


def test_should_stop_interrupts_an_attack(small):
    from icub_guard.attacks import AttackInterrupted

    models, x, y = small
    atk = make_attack("paper", models["svm-rbf"], eps=500.0, steps=50)
    calls = []
    atk.should_stop = lambda: calls.append(1) or len(calls) > 3
    with pytest.raises(AttackInterrupted):
        atk(x[:2], y[:2])
    assert atk.gradient_evals == 3 and atk.steps == 50


@pytest.mark.parametrize("name", ALL)
def test_every_attack_can_be_interrupted(small, name):
    """The attack node's shutdown and `enable false` reach every attack, not only the gradient-step ones."""
    from icub_guard.attacks import AttackInterrupted

    models, x, y = small
    params = {"fooling": {"steps": 50}, "cw": {"steps": 50, "search_steps": 2}}.get(name, {})
    atk = make_attack(name, models["svm-rbf"], **params, **BUDGET.get(name, {}))
    single = name in ("negative", "noise", "fgsm", "fgv")  # one forward pass in all
    calls = []
    atk.should_stop = lambda: calls.append(1) or len(calls) > (0 if single else 1)  # multi-pass: stop mid-run
    target = (y[:2] + 1) % 7 if name == "fooling" else None
    with pytest.raises(AttackInterrupted):
        atk(x[:2], y[:2], target)
    assert len(calls) == (1 if single else 2)  # it stopped at the first check that said stop


@pytest.mark.parametrize("name", ALL)
def test_attacks_refuse_norms_and_arguments_they_do_not_support(small, name):
    models, _, _ = small
    cls = ATTACKS[name]
    for norm in {"l1", "l2", "linf"} - set(cls.norms):
        with pytest.raises(ValueError, match="supports the norm"):
            make_attack(name, models["svm-rbf"], norm=norm, **BUDGET.get(name, {}))
    for norm in cls.norms:
        assert make_attack(name, models["svm-rbf"], norm=norm, **BUDGET.get(name, {})).norm == norm
    with pytest.raises(TypeError):
        make_attack(name, models["svm-rbf"], bogus=1, **BUDGET.get(name, {}))


def test_fixed_norm_attacks_and_their_defaults(small):
    models, _, _ = small
    m = models["svm-rbf"]
    assert make_attack("fgsm", m).norm == "linf" and make_attack("deepfool", m).norm == "l2"
    with pytest.raises(ValueError, match="fgsm supports the norm"):
        make_attack("fgsm", m, norm="l2")  # used to run l∞ silently
    with pytest.raises(TypeError, match="eps"):
        make_attack("fooling", m, eps=10.0)  # used to be dropped silently
    with pytest.raises(ValueError, match="steps"):
        make_attack("bim", m, steps=0)
    assert make_attack("bim", m, steps=5).steps == 5


def test_deepfool_counts_every_backward_pass(small):
    models, x, y = small
    atk = make_attack("deepfool", models["svm-rbf"], steps=1, candidates=4)
    r = atk(x, y)
    assert r.gradient_evals == atk.gradient_evals == 4  # one iteration, four class gradients


@pytest.mark.parametrize("norm,eps", [("l2", 300.0), ("linf", 6.0), ("l1", 2000.0)])
def test_published_images_stay_within_the_budget(small, norm, eps):
    """Rounding to uint8 must not push a perturbation on the sphere past d_max."""
    models, x, y = small
    r = make_attack("pgd", models["svm-rbf"], eps=eps, norm=norm, steps=4)(x, y)
    d = torch.from_numpy(r.images()).float() - x
    lp = {"l1": d.abs().flatten(1).sum(1), "l2": d.flatten(1).norm(dim=1), "linf": d.abs().flatten(1).amax(1)}[norm]
    assert (lp <= eps + 1e-4).all(), lp.max()


def test_quantize_moves_back_only_what_the_budget_needs():
    from icub_guard.attacks.constraints import lp_norm, quantize

    x0 = torch.full((3, 4, 4, 3), 100.0)
    delta = torch.full_like(x0, 0.6)  # nearest rounding: every |δ_i| → 1, ‖·‖ grows by 1/0.6
    delta[1] = 0.4  # nearest rounding goes back to x0: within budget, untouched
    delta[2, 0, 0, 0] = 0.9  # rounded up the least (0.1): kept; the others (0.4) go back first
    eps = float(delta[0].norm())
    q = quantize(x0 + delta, x0, eps, "l2")
    assert (lp_norm(q - x0, "l2") <= eps + 1e-6).all()
    assert (lp_norm((x0 + delta).round() - x0, "l2")[[0, 2]] > eps).all()  # nearest would leave the ball
    assert torch.equal(q[1], x0[1])
    n = int(eps**2)  # a whole-pixel perturbation of 1s: at most ⌊eps²⌋ of them fit, and all of those are kept
    assert int((q[0] - x0[0]).abs().sum()) == n
    assert q[2, 0, 0, 0] == 101.0
    for norm, e in (("l1", 20.0), ("linf", 2.5)):
        big = x0 + torch.randn_like(x0).sign() * 0.6 * (8 if norm == "linf" else 1)
        qq = quantize(big, x0, e, norm)
        assert (lp_norm(qq - x0, norm) <= e + 1e-6).all() and torch.equal(qq, qq.round())
    assert torch.equal(quantize(x0 + 0.7, x0, None, "l2"), x0 + 1)
    with pytest.raises(ValueError, match="integer"):
        quantize(x0 + delta, x0 + 0.5, eps, "l2")


# --------------------------------------------------------------------- APGD


def test_apgd_checkpoints_are_the_papers():
    from icub_guard.attacks.apgd import checkpoints

    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]  # p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)


def test_apgd_refuses_what_it_does_not_support(small):
    from icub_guard.attacks.apgd import APGD, APGDT

    m = small[0]["svm-rbf"]
    for kw, why in (({"eps": None}, "budget"), ({"eps": 0.0}, "budget"), ({"eps": 1.0, "loss": "hinge"}, "loss"),
                    ({"eps": 1.0, "steps": 0}, "steps"), ({"eps": 1.0, "rho": 1.5}, "rho"),
                    ({"eps": 1.0, "norm": "l0"}, "norm")):
        with pytest.raises(ValueError, match=why):
            APGD(m, **kw)
    with pytest.raises(ValueError, match="steps"):
        APGDT(m, eps=1.0, n_targets=0)
    with pytest.raises(TypeError):
        APGD(m, eps=1.0, step_size=3)


@pytest.mark.parametrize("norm,eps", [("l2", 100.0), ("linf", 2.5), ("l1", 1500.0)])
def test_apgd_stays_in_budget_and_beats_pgd_with_the_same_steps(small, norm, eps):
    from icub_guard.attacks.apgd import APGD, APGDT

    # budgets where PGD fools about half the crops (a saturated budget cannot tell the attacks apart), and 20 steps:
    # at 10, APGD's step-size checkpoints come too early and APGD-CE was 2 crops below PGD on this chain
    models, x, y = small
    m = models["svm-rbf"]
    pgd = make_attack("pgd", m, eps=eps, norm=norm, steps=20)(x, y)
    for attack in (APGD(m, eps=eps, norm=norm, steps=20), APGD(m, eps=eps, norm=norm, steps=20, loss="dlr"),
                   APGDT(m, eps=eps, norm=norm, steps=20, n_targets=2)):
        r = attack(x, y)
        assert bool((r.norms[norm] <= eps * (1 + 1e-5) + 1e-4).all()) and r.x_adv.min() >= 0 and r.x_adv.max() <= 255
        assert r.success_rate >= pgd.success_rate - 1 / len(y) - 1e-6, (attack.name, attack.loss, norm)  # a crop
        with torch.no_grad():
            assert torch.equal(r.success, m(r.x_adv).argmax(1) != y)  # success as the model judges it
    assert APGD(m, eps=eps, norm=norm, steps=20)(x, y).success_rate > 0


def test_apgd_halves_its_step_without_another_backward_pass(small):
    """At a checkpoint where progress stalls, APGD restarts from its best point with the gradient it kept there
    (AutoAttack's `grad_best`): one backward pass per step and one at the start, never one more per halving."""
    from icub_guard.attacks.apgd import APGD

    models, x, y = small
    attack = APGD(models["svm-rbf"], eps=0.5, steps=20)  # far too small to break most crops: they stall
    r = attack(x, y)
    assert not bool(r.success.all())  # so some crop ran every step
    assert r.gradient_evals == 1 + 20


def test_reject_aware_apgd_wants_its_wrong_class_accepted(small):
    from icub_guard.attacks.apgd import APGD

    models, x, y = small
    m = models["svm-adv"]
    aware = APGD(m, eps=400.0, steps=15, reject_aware=True)(x, y)
    blind = APGD(m, eps=400.0, steps=15)(x, y)
    with torch.no_grad():
        s = m(aware.x_adv)
        accepted = s.gather(1, s.argmax(1)[:, None])[:, 0] > m.thresholds[s.argmax(1)]
    assert torch.equal(aware.success, accepted & (s.argmax(1) != y))  # rejected is caught, never a success
    assert aware.success_rate >= blind.success_rate - 1 / len(y)


def test_reject_aware_apgd_t_tries_the_class_nearest_acceptance_first():
    """A high score behind a high threshold is further from acceptance than a lower score behind a low one: the
    reject-aware attacker's first target is the class with the largest score minus threshold."""
    from icub_guard.attacks.apgd import APGDT

    class Fixed(torch.nn.Module):
        reject = True

        def __init__(self):
            super().__init__()
            self.register_buffer("thresholds", torch.tensor([0.0, 2.0, 0.0]))

        def forward(self, x):
            return torch.tensor([[1.0, 0.5, -0.2]]).expand(len(x), 3)

    scores, y = Fixed()(torch.zeros(1, 2, 2, 3)), torch.tensor([0])
    aware = APGDT(Fixed(), eps=1.0, reject_aware=True).target_order(scores, y)
    blind = APGDT(Fixed(), eps=1.0).target_order(scores, y)
    assert aware[0, :2].tolist() == [2, 1] and blind[0, :2].tolist() == [1, 2]


def test_the_gradient_free_search_reads_only_scores_and_breaks_crops(small):
    from icub_guard.attacks.square import SquareSearch

    models, x, y = small
    m = models["svm-rbf"]
    for norm, eps in (("l2", 400.0), ("linf", 8.0)):
        r = SquareSearch(m, eps=eps, norm=norm, queries=150)(x, y)
        assert r.gradient_evals == 0 and r.success_rate > 0, norm  # no gradient: the masking check's point
        assert bool((r.norms[norm] <= eps * (1 + 1e-5) + 1e-4).all())
        with torch.no_grad():
            assert torch.equal(r.success, m(r.x_adv).argmax(1) != y)
    for bad in ({"eps": None}, {"eps": 1.0, "queries": 0}, {"eps": 1.0, "eta": 2.0}, {"eps": 1.0, "norm": "l1"}):
        with pytest.raises(ValueError):
            SquareSearch(m, **bad)
