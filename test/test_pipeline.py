"""Features and the differentiable pixels → scores module."""

import copy

import numpy as np
import pytest
import torch

from icub_guard.core import GuardModel, InputError, WeightsUnavailableError, make_classifier
from icub_guard.core.features import BackboneSpec, FeatureExtractor, load_backbone, weights_sha256


def test_features_are_normalised_batched_and_deterministic(extractor, data7):
    imgs = data7["test"].images[:5]
    f = extractor.extract(imgs)
    assert f.shape == (5, 4096) and f.dtype == np.float32
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert np.allclose(f, np.concatenate([extractor.extract(i) for i in imgs]), atol=1e-5)
    other = FeatureExtractor(extractor.spec, device="cpu")
    assert other.weights_sha256 == extractor.weights_sha256
    assert np.allclose(other.extract(imgs), f, atol=1e-6)


@pytest.mark.parametrize("name,dim", [("alexnet", 4096), ("resnet18", 512)])
def test_backbones_at_default_input_size(name, dim, data7):
    fx = FeatureExtractor(BackboneSpec(name, "random", 0, 224), device="cpu")
    assert fx.extract(data7["test"].images[:2]).shape == (2, dim)


def test_preprocess_is_imagenet_normalisation_of_the_resized_crop(extractor):
    x = torch.rand(2, 40, 50, 3) * 255
    s = extractor.spec.input_size
    resized = torch.nn.functional.interpolate(x.permute(0, 3, 1, 2) / 255, size=(s, s), mode="bilinear",
                                              align_corners=False)
    assert torch.allclose(extractor.preprocess(x), (resized - extractor.mean) / extractor.std, atol=1e-5)


def test_low_precision_autocast_runs_a_trunk_copy_already_in_that_dtype(extractor):
    x = torch.rand(2, 64, 64, 3) * 255
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = extractor(x)
        recast = torch.nn.functional.normalize(extractor.trunk(extractor.preprocess(x)), dim=1)  # weights cast per call
    assert torch.equal(fast, recast)  # the same numbers: autocast casts the weights the same way
    (copy_,) = extractor._lowp.values()
    assert all(p.dtype == torch.bfloat16 for p in copy_.parameters())
    assert all(p.dtype == torch.float32 for p in extractor.trunk.parameters())  # the model itself is untouched
    assert "_lowp" not in str(list(extractor.state_dict()))
    assert extractor(x).dtype == torch.float32  # outside autocast: the float32 trunk


def test_random_seed_changes_weights():
    a, b = load_backbone("resnet18", "random", 0), load_backbone("resnet18", "random", 1)
    assert weights_sha256(a) != weights_sha256(b)


def test_local_checkpoint_roundtrip_and_bad_file(tmp_path):
    model = load_backbone("resnet18", "random", 3)
    path = tmp_path / "r18.pth"
    torch.save(model.state_dict(), path)
    assert weights_sha256(load_backbone("resnet18", str(path))) == weights_sha256(model)
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailableError, match="cannot load"):
        load_backbone("resnet18", str(tmp_path / "junk.pth"))
    with pytest.raises(WeightsUnavailableError, match="imagenet"):
        load_backbone("resnet18", str(tmp_path / "missing.pth"))


@pytest.mark.parametrize("bad", [np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8, 3), np.float32),
                                 np.zeros((0, 8, 8, 3), np.uint8)])
def test_extract_rejects_bad_images(extractor, bad):
    with pytest.raises(InputError):
        extractor.extract(bad)


@pytest.mark.parametrize("name", ["svm", "svm-rbf", "svm-adv", "rls"])
def test_torch_scores_equal_decision_function(feats7, hyper, extractor, data7, name):
    X, y = feats7["train"]
    params = {} if name == "rls" else {"C": hyper["C"], "gamma": hyper["gamma"]}
    clf = make_classifier(name, **params).fit(X, y)
    model = GuardModel.from_classifier(extractor, clf)
    imgs = data7["test"].images[:8]
    with torch.no_grad():
        torch_scores = model(torch.from_numpy(imgs).float()).numpy()
    ref = clf.decision_function(extractor.extract(imgs))
    assert np.abs(torch_scores - ref).max() < 1e-5
    feats = torch.from_numpy(feats7["test"][0][:8])
    assert np.abs(clf.torch_scores()(feats).detach().numpy() - clf.decision_function(feats.numpy())).max() < 1e-9


def test_gradient_matches_finite_differences(feats7, hyper, extractor, data7):
    """Directional derivatives of the whole pixels → scores chain, in float64."""
    X, y = feats7["train"]
    clf = make_classifier("svm-adv", C=hyper["C"], gamma=hyper["gamma"]).fit(X, y)
    ext64 = copy.deepcopy(extractor).to(torch.float64)
    model = GuardModel.from_classifier(ext64, clf)
    # sub-pixel dither: flat saturated backgrounds make exact max-pool ties, points
    # where the network is not differentiable and no finite difference can agree
    gen = torch.Generator().manual_seed(0)
    x = torch.from_numpy(data7["test"].images[:2]).to(torch.float64)
    x = (x + torch.rand(x.shape, generator=gen, dtype=torch.float64) * 0.5).requires_grad_(True)
    scores = model(x)
    w = torch.tensor([[1.0, -0.5, 0.25, 0, 0, 0.7, -1.0]], dtype=torch.float64)
    (scores * w).sum().backward()
    for _ in range(3):
        v = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        h = 1e-6  # small enough not to cross ReLU / max-pool kinks; float64 keeps it exact
        with torch.no_grad():
            fd = ((model(x + h * v) - model(x - h * v)) * w).sum() / (2 * h)
        an = (x.grad * v).sum()
        assert torch.isclose(an, fd, rtol=1e-3, atol=1e-9), (an.item(), fd.item())


def test_accepted_mask_follows_thresholds(feats7, hyper, extractor):
    X, y = feats7["train"]
    clf = make_classifier("svm-adv", C=hyper["C"], gamma=hyper["gamma"]).fit(X, y)
    clf.set_thresholds(np.full(7, 1e6))
    model = GuardModel.from_classifier(extractor, clf)
    s = torch.from_numpy(clf.decision_function(X[:4]))
    assert not model.accepted(s).any()


def test_weights_auto_decides_from_the_cache_without_a_network_attempt(tmp_path, monkeypatch):
    """Checked on the returned note (what /diagnostics shows), not through caplog: under launch_testing's
    pytest plugin (colcon test) new loggers do not propagate, and caplog saw nothing."""
    import urllib.request

    import torch

    from icub_guard.core.features import build_extractor

    def no_network(*a, **k):
        raise AssertionError("weights auto tried the network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty cache
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    fx, degraded = build_extractor("alexnet", "auto", 0, 64, "cpu")
    assert fx.spec.weights == "random" and degraded.startswith("random backbone weights")
    assert "no ImageNet weights" in degraded and str(tmp_path) in degraded


def test_guard_model_casts(feats7, hyper, extractor, data7):
    """`.float()` and `.double()` give working modules (the head used to force float64 on float32 weights)."""
    import torch

    from icub_guard.core import GuardModel, make_classifier

    X, y = feats7["train"]
    clf = make_classifier("svm-rbf", C=hyper["C"], gamma=hyper["gamma"]).fit(X, y)
    x = torch.from_numpy(data7["test"].images[:4]).float()
    ref = GuardModel.from_classifier(extractor, clf)(x)

    def fresh():  # casts work in place: never on the session's shared extractor
        return GuardModel.from_classifier(FeatureExtractor(extractor.spec, "cpu"), clf)

    s32, s64 = fresh().float()(x), fresh().double()(x.double())
    assert s32.dtype == torch.float32 and s64.dtype == torch.float64
    assert torch.allclose(s32.double(), ref, atol=1e-3) and torch.allclose(s64, ref, atol=1e-4)
