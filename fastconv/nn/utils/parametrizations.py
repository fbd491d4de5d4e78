"""``torch.nn.utils.parametrizations``: weight_norm, spectral_norm and orthogonal, written as
parametrizations (:mod:`fastconv.nn.utils.parametrize`), with torch's modules, buffers and
state_dict keys, so a torch state_dict loads unchanged.

* weight_norm(module, name="weight", dim=0): ``weight = g * v / ||v||``, the norm over every
  dim but ``dim`` (the whole tensor for dim=None or -1); ``parametrizations.weight.original0``
  is g (shaped as the norm, size 1 on the other dims) and ``original1`` is v (Salimans and
  Kingma, "Weight Normalization", 2016).
* spectral_norm(module, name="weight", n_power_iterations=1, eps=1e-12, dim=None):
  ``weight = W / sigma(W)`` with sigma the largest singular value of W as a (size(dim), -1)
  matrix, estimated by power iteration on the buffers ``parametrizations.weight.0._u`` and
  ``_v`` (15 steps at registration, then ``n_power_iterations`` steps at each access in
  training mode only); a 1-D W is divided by its norm. dim defaults to 1 for transposed
  convolutions, else 0 (Miyato et al., "Spectral Normalization for Generative Adversarial
  Networks", 2018).
* orthogonal(module, name="weight", orthogonal_map=None, *, use_trivialization=True): the
  weight (a matrix or a batch of them, n x k) has orthonormal columns (rows when n < k). The
  map from the unconstrained ``original`` X (tall orientation, n >= k):
    - "matrix_exp": Q = exp(A), A = tril(X) - tril(X)^T (padded to n x n), first k columns;
    - "cayley": Q = (I - A/2)^-1 (I + A/2), the same A;
    - "householder": Q = H_1 ... H_k, the reflectors' vectors below the diagonal of X, times
      the signs of X's diagonal (truncated to integers, as torch's).
  The default is "matrix_exp" for square matrices and "householder" otherwise. With
  ``use_trivialization`` (the default) the result is multiplied on the left by the buffer
  ``base``, which ``right_inverse`` sets to the assigned matrix (orthogonalised), so
  registering or assigning keeps the weight's value and ``original`` restarts from -I
  (Lezcano-Casado, "Trivializations for Gradient-Based Optimization on Manifolds", 2019).
"""

from __future__ import annotations

from enum import Enum, auto

import numpy as np

from fastconv import functional as F
from fastconv.autograd import no_grad
from fastconv.backend import get_backend
from fastconv.nn.module import Module
from fastconv.nn.utils import parametrize
from fastconv.ops import linalg
from fastconv.tensor import Tensor, _as_array

__all__ = ["orthogonal", "spectral_norm", "weight_norm"]


def _host(t: Tensor) -> np.ndarray:
    """A float64 NumPy copy of ``t`` (the orthogonalisations run on the host)."""
    return np.array(t.detach().__array__(), dtype=np.float64)


def _like(a: np.ndarray, t: Tensor) -> Tensor:
    return Tensor(_as_array(a.astype(t.dtype), t.device))


def _check_dim(dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-ndim}, "
                         f"{ndim - 1}], but got {dim})")
    return dim % ndim


# ----------------------------------------------------------------------------- weight norm

def _norm_except_dim(v: Tensor, dim: int) -> Tensor:
    """torch.norm_except_dim(v, 2, dim): the 2-norm over every dim but ``dim``, kept as size-1
    dims; over the whole tensor (a 0-d result) for dim=-1."""
    if dim == -1:
        return v.norm()
    d = _check_dim(dim, v.ndim)
    others = tuple(i for i in range(v.ndim) if i != d)
    return v.norm(2, dim=others, keepdim=True) if others else v.abs()


class _WeightNorm(Module):
    """weight = g * v / ||v|| (norm over every dim but ``dim``; the whole tensor for -1)."""

    def __init__(self, dim: int | None = 0) -> None:
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_v * (weight_g / _norm_except_dim(weight_v, self.dim))

    def right_inverse(self, weight: Tensor):
        return _norm_except_dim(weight, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Reparametrise ``module.<name>`` as g * v / ||v|| (see the module docstring): g is
    ``module.parametrizations.<name>.original0``, v is ``original1``. Returns the module."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is not None and dim != -1:
        _check_dim(dim, weight.ndim)
    parametrize.register_parametrization(module, name, _WeightNorm(dim), unsafe=True)
    return module


# ----------------------------------------------------------------------------- spectral norm

class _SpectralNorm(Module):
    """weight / sigma, sigma estimated by power iteration on the buffers ``_u`` and ``_v``."""

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0,
                 eps: float = 1e-12) -> None:
        super().__init__()
        ndim = weight.ndim
        if dim >= ndim or dim < -ndim:
            raise IndexError("Dimension out of range (expected to be in range of "
                             f"[-{ndim}, {ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError("Expected n_power_iterations to be positive, but got "
                             f"n_power_iterations={n_power_iterations}")
        self.dim = dim if dim >= 0 else dim + ndim
        self.eps = eps
        if ndim > 1:  # a vector needs no estimate: forward divides it by its norm
            from fastconv import random

            self.n_power_iterations = n_power_iterations
            weight_mat = self._reshape_weight_to_matrix(weight.detach())
            h, w = weight_mat.shape
            rng = random.generator()
            u = _like(rng.standard_normal(h), weight)
            v = _like(rng.standard_normal(w), weight)
            self.register_buffer("_u", F.normalize(u, dim=0, eps=self.eps))
            self.register_buffer("_v", F.normalize(v, dim=0, eps=self.eps))
            self._power_method(weight_mat, 15)  # start from reasonable singular vectors

    def _reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, weight_mat: Tensor, n_power_iterations: int) -> None:
        """u <- W v / |W v|, v <- W^T u / |W^T u|, in the buffers' own arrays."""
        with no_grad():
            w = weight_mat.detach()
            for _ in range(n_power_iterations):
                self._u.data[...] = F.normalize(w.mv(self._v), dim=0, eps=self.eps).data
                self._v.data[...] = F.normalize(w.t().mv(self._u), dim=0, eps=self.eps).data

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        weight_mat = self._reshape_weight_to_matrix(weight)
        if self.training:
            self._power_method(weight_mat, self.n_power_iterations)
        u, v = self._u.detach().clone(), self._v.detach().clone()
        sigma = u.dot(weight_mat.mv(v))
        return weight / sigma

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def _is_transposed_conv(module: Module) -> bool:
    from fastconv.nn import layers

    kinds = tuple(getattr(layers, n) for n in ("ConvTranspose1d", "ConvTranspose2d",
                                                "ConvTranspose3d") if hasattr(layers, n))
    return issubclass(parametrize.type_before_parametrizations(module), kinds)


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1,
                  eps: float = 1e-12, dim: int | None = None) -> Module:
    """Divide ``module.<name>`` by its largest singular value (see the module docstring).
    Returns the module."""
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if dim is None:
        dim = 1 if _is_transposed_conv(module) else 0
    parametrize.register_parametrization(
        module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
    return module


# ----------------------------------------------------------------------------- orthogonal

class _OrthMaps(Enum):
    matrix_exp = auto()
    cayley = auto()
    householder = auto()


def _is_orthogonal(q: np.ndarray) -> bool:
    """torch's test: Q^T Q = I to 10 n float32 epsilons."""
    n, k = q.shape[-2:]
    eps = 10.0 * n * float(np.finfo(np.float32).eps)
    return bool(np.allclose(np.swapaxes(q, -1, -2) @ q, np.eye(k), atol=eps))


def _make_orthogonal(a: np.ndarray) -> np.ndarray:
    """The Q of A = QR (A tall) with diag(R) >= 0: unique for a full-rank A."""
    q, r = np.linalg.qr(a)
    return q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]


def _geqrf(a: np.ndarray):
    """LAPACK geqrf of each matrix: R on and above the diagonal, the Householder vectors
    below it, and their scalars tau."""
    h, tau = np.linalg.qr(a, mode="raw")
    return np.swapaxes(h, -1, -2).copy(), tau


def _householder_product(a: Tensor, tau: Tensor) -> Tensor:
    """torch.linalg.householder_product for a tall (..., n, k) ``a``: the first k columns of
    H_1 ... H_k, H_i = I - tau_i v_i v_i^T with v_i = e_i plus a's column i below the
    diagonal. Built from Tensor ops, so it is differentiable in ``a`` and ``tau``."""
    n, k = a.shape[-2:]
    eye = Tensor(_as_array(np.eye(n, k, dtype=np.float32), a.device))
    vs = a.tril(-1) + eye
    q = eye.expand(*a.shape)
    for i in reversed(range(k)):
        v = vs[..., :, i:i + 1]
        q = q - tau[..., i:i + 1].unsqueeze(-1) * (v @ (v.mT @ q))
    return q


class _Orthogonal(Module):
    """An orthogonal (or semi-orthogonal) matrix from an unconstrained one (module docstring)."""

    def __init__(self, weight: Tensor, orthogonal_map: _OrthMaps, *,
                 use_trivialization: bool = True) -> None:
        super().__init__()
        self.shape = tuple(weight.shape)
        self.orthogonal_map = orthogonal_map
        if use_trivialization:
            self.register_buffer("base", None)

    def forward(self, X: Tensor) -> Tensor:
        n, k = X.shape[-2:]
        transposed = n < k
        if transposed:
            X = X.mT
            n, k = k, n
        if self.orthogonal_map in (_OrthMaps.matrix_exp, _OrthMaps.cayley):
            X = X.tril()
            if n != k:
                from fastconv.toplevel import cat

                X = cat([X, X.new_zeros(*X.shape[:-2], n, n - k)], dim=-1)
            A = X - X.mT  # skew-symmetric
            if self.orthogonal_map == _OrthMaps.matrix_exp:
                Q = linalg.matrix_exp(A)
            else:
                eye = Tensor(_as_array(np.eye(n, dtype=np.float32), A.device))
                Q = linalg.solve((eye - 0.5 * A).expand(*A.shape),
                                 (eye + 0.5 * A).expand(*A.shape))
            if n != k:
                Q = Q[..., :k]
        else:
            A = X.tril(-1)
            tau = 2.0 / (1.0 + (A * A).sum(dim=-2))
            Q = _householder_product(A, tau)
            # the signs: X's diagonal truncated to integers, outside the graph (torch's .int())
            diag = get_backend(X.device).xp.diagonal(X.data, axis1=-2, axis2=-1)
            Q = Q * Tensor(diag.astype(np.int32).astype(X.dtype)).unsqueeze(-2)
        if hasattr(self, "base"):
            Q = self.base @ Q
        if transposed:
            Q = Q.mT
        return Q

    def right_inverse(self, Q: Tensor) -> Tensor:
        if tuple(Q.shape) != self.shape:
            raise ValueError(f"Expected a matrix or batch of matrices of shape {self.shape}. "
                             f"Got a tensor of shape {tuple(Q.shape)}.")
        q_init = Q
        q = _host(Q)
        n, k = q.shape[-2:]
        transpose = n < k
        if transpose:
            q = np.swapaxes(q, -1, -2)
            n, k = k, n
        if not hasattr(self, "base"):
            if self.orthogonal_map in (_OrthMaps.cayley, _OrthMaps.matrix_exp):
                raise NotImplementedError("It is not possible to assign to the matrix "
                                          "exponential or the Cayley parametrizations when "
                                          "use_trivialization=False.")
            # Householder: the reflectors of Q's QR, and on the diagonal the signs that make
            # forward give back the Q factor with a non-negative R diagonal.
            a, tau = _geqrf(q)
            diag = np.sign(np.diagonal(a, axis1=-2, axis2=-1))
            diag = np.where(tau == 0.0, -diag, diag)
            idx = np.arange(k)
            a[..., idx, idx] = diag
            return _like(np.swapaxes(a, -1, -2) if transpose else a, q_init)
        if n == k:
            q = q.copy() if _is_orthogonal(q) else _make_orthogonal(q)
        else:  # complete Q to an n x n orthogonal matrix with random columns
            from fastconv import random

            extra = random.generator().standard_normal(q.shape[:-2] + (n, n - k))
            q = _make_orthogonal(np.concatenate([q, extra], axis=-1))
        self.base = _like(q, q_init)
        # -I: the householder map takes it to I (and the others take any diagonal to I)
        neg_id = np.zeros(q_init.shape)
        idx = np.arange(min(q_init.shape[-2:]))
        neg_id[..., idx, idx] = -1.0
        return _like(neg_id, q_init)


def orthogonal(module: Module, name: str = "weight", orthogonal_map: str | None = None, *,
               use_trivialization: bool = True) -> Module:
    """Constrain ``module.<name>`` (a matrix or a batch of them) to orthonormal columns (or
    rows); see the module docstring for the maps. Returns the module.

    Args:
        orthogonal_map: "matrix_exp", "cayley" or "householder"; None picks "matrix_exp" for
            square matrices and "householder" otherwise.
        use_trivialization: keep the buffer ``base`` (the weight's value at registration or
            at the last assignment) and parametrize around it.
    """
    weight = getattr(module, name, None)
    if not isinstance(weight, Tensor):
        raise ValueError(f"Module '{module}' has no parameter or buffer with name '{name}'")
    if weight.ndim < 2:
        raise ValueError("Expected a matrix or batch of matrices. "
                         f"Got a tensor of {weight.ndim} dimensions.")
    if orthogonal_map is None:
        orthogonal_map = "matrix_exp" if weight.shape[-2] == weight.shape[-1] else "householder"
    orth_enum = getattr(_OrthMaps, orthogonal_map, None) if isinstance(orthogonal_map, str) \
        else None
    if orth_enum is None:
        raise ValueError('orthogonal_map has to be one of "matrix_exp", "cayley", '
                         f'"householder". Got: {orthogonal_map}')
    orth = _Orthogonal(weight, orth_enum, use_trivialization=use_trivialization)
    parametrize.register_parametrization(module, name, orth, unsafe=True)
    return module
