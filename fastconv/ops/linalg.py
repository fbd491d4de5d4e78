"""Square-matrix functions with gradients: the matrix exponential and the solution of a
linear system, on (..., n, n) batches (what ``parametrizations.orthogonal`` needs for its
"matrix_exp" and "cayley" maps).

Array code on the inputs' array module (NumPy or CuPy), each backward next to its forward.
Both compute in float64 and return the input's float32, so the float32 results are
rounded once (torch computes in float32 throughout; the two agree to float32 rounding).

* matrix_exp(A): scaling and squaring with the [13/13] Padé approximant (Higham, "The
  scaling and squaring method for the matrix exponential revisited", SIAM J. Matrix Anal.
  Appl. 26(4), 2005). Gradient: for L = <G, exp(A)>, dL/dA is the Fréchet derivative of exp
  at A^T in the direction G, read off the upper-right block of exp([[A^T, G], [0, A^T]])
  (Mathias, "A chain rule for matrix functions and applications", 1996) as torch does.
* solve(A, B): X with A X = B. Gradient: dB = A^-T G, dA = -dB X^T.
"""

from __future__ import annotations

import math

from fastconv.function import Function

# Higham (2005), table 10.4: the Padé [13/13] coefficients b_0 .. b_13 and theta_13, the
# largest 1-norm for which the approximant is accurate to double precision unscaled.
_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0,
           1187353796428800.0, 129060195264000.0, 10559470521600.0, 670442572800.0,
           33522128640.0, 1323241920.0, 40840800.0, 960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


def expm(xp, a):
    """exp of each (n, n) matrix of the float64 array ``a`` (..., n, n)."""
    n = a.shape[-1]
    norm = float(xp.abs(a).sum(axis=-2).max()) if a.size else 0.0  # the largest 1-norm
    s = max(0, math.ceil(math.log2(norm / _THETA13))) if norm > _THETA13 else 0
    a = a / (2.0 ** s)
    b = _PADE13
    eye = xp.eye(n, dtype=a.dtype)
    a2 = a @ a
    a4 = a2 @ a2
    a6 = a4 @ a2
    u = a @ (a6 @ (b[13] * a6 + b[11] * a4 + b[9] * a2) + b[7] * a6 + b[5] * a4
             + b[3] * a2 + b[1] * eye)
    v = a6 @ (b[12] * a6 + b[10] * a4 + b[8] * a2) + b[6] * a6 + b[4] * a4 + b[2] * a2 \
        + b[0] * eye
    r = xp.linalg.solve(v - u, v + u)
    for _ in range(s):
        r = r @ r
    return r


class MatrixExp(Function):
    """exp(A) for each (n, n) matrix of A (..., n, n)."""

    def forward(self, a):
        self.a, self.dtype = a.astype(self.xp.float64), a.dtype
        return expm(self.xp, self.a).astype(a.dtype)

    def backward(self, dy):
        xp, at = self.xp, self.xp.swapaxes(self.a, -1, -2)
        n = at.shape[-1]
        block = xp.zeros(at.shape[:-2] + (2 * n, 2 * n), xp.float64)
        block[..., :n, :n] = at
        block[..., n:, n:] = at
        block[..., :n, n:] = dy
        return expm(xp, block)[..., :n, n:].astype(self.dtype)


class Solve(Function):
    """X = A^-1 B for A (..., n, n) and B (..., n, k) of the same batch shape."""

    def forward(self, a, b):
        xp = self.xp
        self.a, self.dtype = a.astype(xp.float64), a.dtype
        self.x = xp.linalg.solve(self.a, b.astype(xp.float64))
        return self.x.astype(a.dtype)

    def backward(self, dy):
        xp = self.xp
        db = xp.linalg.solve(xp.swapaxes(self.a, -1, -2), dy.astype(xp.float64))
        da = -(db @ xp.swapaxes(self.x, -1, -2)) if self.needs_input_grad[0] else None
        return (None if da is None else da.astype(self.dtype)), db.astype(self.dtype)


def _square(a, what: str, op: str):
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"{op}: {what} must be a square matrix or a batch of square "
                           f"matrices (..., n, n), got shape {tuple(a.shape)}")
    if a.dtype.kind != "f":
        raise TypeError(f"{op}: {what} must be a floating-point tensor, got {a.dtype}")


def matrix_exp(a):
    """exp(A) = sum_k A^k / k! of each square matrix of the Tensor ``a`` (..., n, n), with its
    gradient (see the module docstring)."""
    _square(a, "A", "matrix_exp")
    return MatrixExp.apply(a)


def solve(a, b):
    """X with A X = B, for the Tensors ``a`` (..., n, n) and ``b`` (..., n, k) of one batch
    shape, with the gradients of both (a singular A raises numpy's LinAlgError)."""
    _square(a, "A", "solve")
    if b.ndim != a.ndim or b.shape[:-1] != a.shape[:-1] or b.dtype != a.dtype:
        raise RuntimeError(f"solve: B must be (..., {a.shape[-1]}, k) with A's batch shape "
                           f"{tuple(a.shape[:-2])} and dtype {a.dtype}, got shape "
                           f"{tuple(b.shape)} and dtype {b.dtype}")
    return Solve.apply(a, b)
