"""Training examples with a growable, cached Gram matrix (what online learning needs).

Adding an example costs one kernel row, O(n·d); removal swaps the last example
into the hole, O(n). Neither copies the n×n matrix. K is kept exactly
symmetric: SMO updates its gradient with rows of K where it means columns.
"""

from __future__ import annotations

import numpy as np

from ..kernels import kernel


class GramStore:
    def __init__(self, dim: int, kind: str, gamma: float, cap: int = 64):
        self.kind, self.gamma, self.n = kind, gamma, 0
        self.X = np.zeros((cap, dim), np.float32)
        self.sqn = np.zeros(cap, np.float64)  # squared row norms: a new row's kernel needs no pass over X's norms
        self.K = np.zeros((cap, cap), np.float64)
        self.label = np.zeros(cap, np.int32)
        self.age = np.zeros(cap, np.int64)
        self.clock = 0

    @property
    def capacity(self) -> int:
        return len(self.X)

    def _grow(self, need: int) -> None:
        cap = len(self.X)
        if need <= cap:
            return
        new = max(need, 2 * cap)
        X = np.zeros((new, self.X.shape[1]), np.float32)
        K = np.zeros((new, new), np.float64)
        X[: self.n], K[: self.n, : self.n] = self.X[: self.n], self.K[: self.n, : self.n]
        self.X, self.K = X, K
        self.sqn = np.resize(self.sqn, new)
        self.label = np.resize(self.label, new)
        self.age = np.resize(self.age, new)

    def add(self, X: np.ndarray, labels: np.ndarray) -> slice:
        n0, m = self.n, len(X)
        self._grow(n0 + m)
        self.X[n0 : n0 + m] = X
        x32 = self.X[n0 : n0 + m]
        self.sqn[n0 : n0 + m] = np.einsum("ij,ij->i", x32, x32)
        rows = kernel(X, self.X[: n0 + m], self.kind, self.gamma, precise=False, nb=self.sqn[: n0 + m])
        # a float32 GEMM need not give x_i·x_j and x_j·x_i the same rounding (OpenBLAS's Haswell kernels
        # do not): averaging makes the new block symmetric, or SMO's gradient drifts from Kβ − y
        block = rows[:, n0:]
        block[...] = (block + block.T) * 0.5
        self.K[n0 : n0 + m, : n0 + m] = rows
        self.K[: n0 + m, n0 : n0 + m] = rows.T
        self.label[n0 : n0 + m] = labels
        self.age[n0 : n0 + m] = self.clock + np.arange(m)
        self.clock += m
        self.n = n0 + m
        return slice(n0, n0 + m)

    def put(self, X: np.ndarray, labels: np.ndarray, packed: np.ndarray, sqn: np.ndarray) -> None:
        """Fill an empty store with saved examples and their saved K (`packed`), not recomputed:
        a recomputed K differs in the last bits, and the solver would continue from another state."""
        n = len(X)
        if self.n or packed.shape != (n * (n + 1) // 2,) or sqn.shape != (n,):
            raise ValueError("the saved Gram matrix does not match the saved examples")
        self._grow(n)
        self.X[:n], self.sqn[:n], self.label[:n] = X, sqn, labels
        self.age[:n] = np.arange(n)
        self.clock = self.n = n
        o = 0
        for i in range(n):
            self.K[i, i:n] = self.K[i:n, i] = packed[o : o + n - i]
            o += n - i

    def packed(self) -> np.ndarray:
        """K's upper triangle, row by row (K is symmetric: half the bytes of K in a model file)."""
        n = self.n
        return np.concatenate([self.K[i, i:n] for i in range(n)]) if n else np.zeros(0)

    def remove(self, i: int, arrays: list[np.ndarray]) -> None:
        """Delete example i, moving the last one into its place (also in `arrays`)."""
        last = self.n - 1
        if i != last:
            self.X[i] = self.X[last]
            self.sqn[i] = self.sqn[last]
            self.K[i, :] = self.K[last, :]
            self.K[:, i] = self.K[:, last]
            self.K[i, i] = self.K[last, last]
            self.label[i], self.age[i] = self.label[last], self.age[last]
            for a in arrays:
                a[i] = a[last]
        self.n = last
