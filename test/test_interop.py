"""The guard attacked by torchattacks, Foolbox and ART through `GuardModel.nchw01()`, as a new user would.

Each library runs its own attack on a small real chain (32 px crops → random AlexNet at 64 px →
SVM-RBF); the test checks that the attack succeeds and that its images respect the library's
budget and [0, 1] box. Each group is skipped, with the reason, where the library is not installed
(`make test` installs them from requirements-interop.txt).
"""

import numpy as np
import pytest
import torch

from icub_guard.core import GuardModel, make_classifier
from icub_guard.core.features import BackboneSpec, FeatureExtractor

from conftest import shrink


@pytest.fixture(scope="module")
def chain(data7):
    fx = FeatureExtractor(BackboneSpec("alexnet", "random", 0, 64), device="cpu")
    tr, te = data7["train"], data7["test"]
    clf = make_classifier("svm-rbf", C=10.0).fit(fx.extract(shrink(tr.images)), tr.labels)
    model = GuardModel.from_classifier(fx, clf).nchw01()
    idx = np.arange(0, len(te), 16)  # one crop per class
    x = torch.from_numpy(shrink(te.images[idx])).permute(0, 3, 1, 2).float() / 255.0
    y = torch.tensor([list(clf.classes_).index(v) for v in te.labels[idx]])
    with torch.no_grad():
        right = model(x).argmax(1) == y
    assert right.float().mean() > 0.7
    return model, x[right], y[right]


def fooled(model, x_adv, y) -> float:
    with torch.no_grad():
        return float((model(torch.as_tensor(x_adv)).argmax(1) != y).float().mean())


def within(x_adv, x, eps, norm) -> bool:
    d = (torch.as_tensor(x_adv) - x).flatten(1)
    n = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    return bool((n <= eps + 1e-5).all()) and float(torch.as_tensor(x_adv).min()) >= 0.0 and \
        float(torch.as_tensor(x_adv).max()) <= 1.0


def test_adapter_convention(chain):
    model, x, _ = chain
    s = model(x)
    assert s.dtype == torch.float32 and s.shape == (len(x), 7)
    x255 = x.permute(0, 2, 3, 1) * 255.0
    assert torch.allclose(s.double(), model.model(x255), atol=1e-5)


def test_torchattacks(chain):
    ta = pytest.importorskip("torchattacks", reason="torchattacks is not installed (requirements-interop.txt)")
    model, x, y = chain
    for atk, eps, norm, target in [(ta.FGSM(model, eps=8 / 255), 8 / 255, "linf", 0.5),
                                   (ta.PGD(model, eps=8 / 255, alpha=2 / 255, steps=10), 8 / 255, "linf", 0.8),
                                   (ta.DeepFool(model, steps=10, overshoot=0.02), float("inf"), "l2", 0.8)]:
        x_adv = atk(x, y)  # DeepFool is unbounded: only the box is checked
        assert fooled(model, x_adv, y) >= target, type(atk).__name__
        assert within(x_adv, x, eps, norm), type(atk).__name__
        assert (x_adv - x).abs().amax() > 0  # not the black images of the 0..255 convention


def test_foolbox(chain):
    fb = pytest.importorskip("foolbox", reason="foolbox is not installed (requirements-interop.txt)")
    model, x, y = chain
    fmodel = fb.PyTorchModel(model, bounds=(0, 1))
    _, clipped, success = fb.attacks.L2DeepFoolAttack(steps=10, candidates=4)(fmodel, x, y, epsilons=[2.0])
    assert success[0].float().mean() >= 0.8 and within(clipped[0], x, 2.0, "l2")
    _, clipped, success = fb.attacks.LinfPGD(steps=10, rel_stepsize=0.25)(fmodel, x, y, epsilons=[8 / 255])
    assert success[0].float().mean() >= 0.8 and within(clipped[0], x, 8 / 255, "linf")


def test_art(chain):
    pytest.importorskip("art", reason="adversarial-robustness-toolbox is not installed (requirements-interop.txt)")
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    model, x, y = chain
    clf = PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
                            nb_classes=7, clip_values=(0.0, 1.0))
    xn = x.numpy()
    x_adv = FastGradientMethod(clf, norm=2, eps=2.0).generate(xn)
    assert fooled(model, x_adv, y) >= 0.5 and within(x_adv, x, 2.0, "l2")
    x_adv = ProjectedGradientDescent(clf, norm=np.inf, eps=8 / 255, eps_step=2 / 255, max_iter=10,
                                     verbose=False).generate(xn)
    assert fooled(model, x_adv, y) >= 0.8 and within(x_adv, x, 8 / 255, "linf")


def test_the_evaluations_ensemble_is_never_weaker_than_torchattacks_apgd(data7, small7):
    """Issue 19's cross-check on a small fixed set: at every d_max the ensemble's curve (the fast minimum-norm
    attack, then APGD-CE and APGD-T on what it left) is at most torchattacks' APGD-CE and APGD-T curves, within
    one crop; and never above the minimum-norm curve alone. Crops are judged as published: whole pixels. The chain is
    `small7` (random SimNet at 32 px): the peers' APGD-T alone takes 240 gradient passes here."""
    ta = pytest.importorskip("torchattacks", reason="torchattacks is not installed (requirements-interop.txt)")
    from icub_guard.attacks.constraints import quantize
    from icub_guard.evaluation.curves import (
        CurveProblem,
        CurveSettings,
        EnsembleSettings,
        curve_images,
        ensemble_images,
    )

    fx, clf, model, te = small7.fx, small7.clf, small7.model, data7["test"]
    idx = np.arange(0, len(te), 4)  # 4 crops per class
    crops = shrink(te.images[idx])
    x = torch.from_numpy(crops).float()
    y = torch.tensor([list(clf.classes_).index(v) for v in te.labels[idx]])
    every = np.arange(len(y))

    def failed(images, i):  # still correct
        return clf.predict_indices(fx.extract(images)) == y.numpy()[i]

    grid = [0.0, 120.0, 240.0]
    problem = CurveProblem(model, x, y, grid, failed, deep=False)
    alone, _ = curve_images(CurveSettings("fmn", "l2", 20, 20, 10, 10, "float32"), problem)
    ours, _ = ensemble_images(EnsembleSettings(), problem, alone)
    net, x01, n = model.nchw01(), x.permute(0, 3, 1, 2) / 255.0, len(y)
    theirs = {}
    for name, make in (("APGD-CE", lambda d: ta.APGD(net, norm="L2", eps=d / 255, steps=20, loss="ce", seed=0)),
                       ("APGD-T", lambda d: ta.APGDT(net, norm="L2", eps=d / 255, steps=20, n_classes=7, seed=0))):
        theirs[name] = [float(np.mean(failed(crops, every)))]
        for d in grid[1:]:
            xa = make(d)(x01, y).permute(0, 2, 3, 1) * 255.0
            published = quantize(xa.clamp(0, 255), x, d, "l2").to(torch.uint8).numpy()
            theirs[name].append(float(np.mean(failed(published, every))))
    for i, d in enumerate(grid):
        a, b = float(np.mean(failed(ours[i], every))), float(np.mean(failed(alone[i], every)))
        assert a <= b + 1e-9, f"the ensemble is weaker than its minimum-norm member at d_max {d:g}"
        for name, curve in theirs.items():
            assert a <= curve[i] + 1 / n + 1e-9, f"torchattacks' {name} beats the ensemble at d_max {d:g}: " \
                                                 f"{curve[i]:.3f} vs {a:.3f}"
