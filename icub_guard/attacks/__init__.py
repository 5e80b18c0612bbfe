"""Attacks on the pixels → scores module: one small module each, one base, one projection.

`make_attack(name, model, **params)` builds any of them by name.
"""

from .apgd import APGD, APGDT
from .base import PRECISIONS, Attack, AttackInterrupted, AttackResult, accept_margins, fast_precision, resolve_precision
from .bim import BIM
from .constraints import all_norms, lp_norm, project, rect_mask
from .cw import CarliniWagner
from .deepfool import DeepFool
from .fgsm import FGSM
from .fgv import FGV
from .fmn import FastMinimumNorm
from .fooling import FoolingImages
from .hotcold import HotCold
from .negative import NegativeImage
from .noise import GaussianNoise
from .orthogonal import OrthogonalPGD
from .paper import PaperAttack
from .pgd import PGD
from .square import SquareSearch
from .universal import UniversalPerturbation

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (PaperAttack, FGSM, FGV, HotCold, BIM, PGD, APGD, APGDT, DeepFool, CarliniWagner, GaussianNoise,
                NegativeImage, UniversalPerturbation, FoolingImages, SquareSearch)
}


def make_attack(name: str, model, **params) -> Attack:
    if name not in ATTACKS:
        raise ValueError(f"unknown attack {name!r}; choose one of {sorted(ATTACKS)}")
    return ATTACKS[name](model, **params)


__all__ = [
    "APGD", "APGDT", "ATTACKS", "BIM", "FGSM", "FGV", "PGD", "PRECISIONS", "Attack", "AttackInterrupted",
    "AttackResult",
    "CarliniWagner", "DeepFool", "FastMinimumNorm", "FoolingImages", "GaussianNoise", "HotCold", "NegativeImage",
    "OrthogonalPGD", "PaperAttack", "SquareSearch", "UniversalPerturbation", "accept_margins", "all_norms",
    "fast_precision",
    "lp_norm", "make_attack", "project", "rect_mask", "resolve_precision",
]
