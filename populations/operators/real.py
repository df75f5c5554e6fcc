"""Real-vector operators after Deb (as in DEAP's `cxSimulatedBinaryBounded` and
`mutPolynomialBounded`), vectorised over leading axes and driven by an explicit Generator.

Arrays may be one vector `(n_var,)` or a batch `(n, n_var)`; bounds broadcast.
"""
from __future__ import annotations

import numpy as np


def cx_sbx(X1: np.ndarray, X2: np.ndarray, rng: np.random.Generator, *, eta: float,
           low: np.ndarray, up: np.ndarray, indpb: float = 0.5,
           eps: float = 1.0e-14) -> tuple[np.ndarray, np.ndarray]:
    """Simulated binary crossover: two children, each variable crossed with prob `indpb`."""
    X1, X2 = np.asarray(X1, dtype=float), np.asarray(X2, dtype=float)
    shape = np.broadcast_shapes(X1.shape, X2.shape)
    cross = (rng.random(shape) <= indpb) & (np.abs(X1 - X2) > eps)
    y1, y2 = np.minimum(X1, X2), np.maximum(X1, X2)
    delta = np.where(cross, y2 - y1, 1.0)  # the uncrossed entries are discarded below
    rand = rng.random(shape)
    swap = rng.random(shape) <= 0.5
    p = 1.0 / (eta + 1.0)

    def beta_q(beta: np.ndarray) -> np.ndarray:
        alpha = 2.0 - np.power(beta, -(eta + 1.0))
        return np.where(rand <= 1.0 / alpha, np.power(rand * alpha, p),
                        np.power(1.0 / (2.0 - rand * alpha), p))

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c1 = 0.5 * (y1 + y2 - beta_q(1.0 + 2.0 * (y1 - low) / delta) * delta)
        c2 = 0.5 * (y1 + y2 + beta_q(1.0 + 2.0 * (up - y2) / delta) * delta)
    c1, c2 = np.clip(c1, low, up), np.clip(c2, low, up)
    C1 = np.where(cross, np.where(swap, c2, c1), X1)
    C2 = np.where(cross, np.where(swap, c1, c2), X2)
    return C1, C2


def mut_polynomial(X: np.ndarray, rng: np.random.Generator, *, eta: float, low: np.ndarray,
                   up: np.ndarray, indpb: float) -> np.ndarray:
    """Polynomial mutation: each variable mutated with probability `indpb`, kept in bounds."""
    X = np.asarray(X, dtype=float)
    mut = rng.random(X.shape) <= indpb
    rand = rng.random(X.shape)
    span = np.broadcast_to(up - low, X.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1 = (X - low) / span
        d2 = (up - X) / span
        p = 1.0 / (eta + 1.0)
        lo = np.power(2.0 * rand + (1.0 - 2.0 * rand) * np.power(1.0 - d1, eta + 1.0), p) - 1.0
        hi = 1.0 - np.power(2.0 * (1.0 - rand) + 2.0 * (rand - 0.5) * np.power(1.0 - d2, eta + 1.0), p)
    delta_q = np.where(rand < 0.5, lo, hi)
    Y = np.where(mut & (span > 0), X + delta_q * span, X)
    return np.clip(Y, low, up)
