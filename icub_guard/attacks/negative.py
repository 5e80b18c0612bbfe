"""Negative images (Hosseini et al., 2017): 255 − x, a "semantic" change, inside the mask."""

from __future__ import annotations

from .base import Attack


class NegativeImage(Attack):
    name = "negative"
    supports_targeted = False

    def _run(self, x, y, target, start):
        return self.box[1] + self.box[0] - x
