"""nn.SyncBatchNorm: batch norm whose statistics are those of the global batch, across ranks
(torch.nn.SyncBatchNorm's signature and semantics).

With data parallelism each rank sees N/R images; plain BatchNorm normalises with those alone,
so small per-rank batches give noisy statistics and the R replicas compute something other
than one process on the global batch. SyncBatchNorm makes the two the same, up to the order
of float sums:

* forward: each rank takes its per-channel count, mean and sum of squared deviations (in
  float64), one all-gather brings every rank's three rows, and each rank merges them (Chan et
  al.'s pairwise formula, the same arithmetic in rank order on every rank, so every rank
  normalises with the same numbers). The running statistics take the global mean and the
  unbiased global variance (var x N / (N - 1), N the global count), as torch's.
* backward: with xc = x - mean, dx needs sum(dy) and sum(dy * xc) over the global batch;
  each rank's two per-channel sums go through one all-reduce, then
  dx = weight * invstd * (dy - sum(dy) / N - xc * invstd^2 * sum(dy * xc) / N).
  The weight and bias gradients are this rank's own sums, as in torch: DistributedDataParallel
  averages them with the other parameters' gradients.

Outside a process group, with one rank, in evaluation, or without batch statistics wanted,
it is BatchNorm (the same calls). ``process_group`` must be None (the default group).
"""

from __future__ import annotations

import numpy as np

from fastconv import functional as F
from fastconv.function import Function
from fastconv.nn.layers import _BatchNorm
from fastconv.nn.module import Module, factory_kwargs
from fastconv.ops.validate import contiguous


class SyncBatchNormTrain(Function):
    """Normalise with the global batch statistics; update the running averages in place."""

    def forward(self, x, weight, bias, running_mean, running_var, eps, momentum, collectives):
        xp = self.xp
        x = contiguous(xp, x)
        C = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, C) + (1,) * (x.ndim - 2)
        n = x.size // C
        mean = x.sum(axis=axes, dtype=xp.float64) / max(n, 1)
        xc = x - mean.astype(np.float32).reshape(shape)
        local = xp.stack([xp.full(C, float(n)), mean, (xc * xc).sum(axis=axes, dtype=xp.float64)])
        counts, means, m2s = collectives.all_gather(local).transpose(1, 0, 2)  # each (R, C)
        total = counts.sum(axis=0)
        if float(total[0]) < 2:
            raise ValueError(f"SyncBatchNorm: batch statistics need more than one value per "
                             f"channel over all ranks, got {int(total[0])}")
        mean = (counts * means).sum(axis=0) / total
        var = (m2s + counts * (means - mean) ** 2).sum(axis=0) / total
        if running_mean is not None:
            running_mean *= 1 - momentum
            running_mean += (momentum * mean).astype(np.float32)
            running_var *= 1 - momentum
            running_var += (momentum * var * total / (total - 1)).astype(np.float32)
        mean32, var32 = mean.astype(np.float32), var.astype(np.float32)
        weight = xp.ones(C, np.float32) if weight is None else contiguous(xp, weight)
        bias = xp.zeros(C, np.float32) if bias is None else contiguous(xp, bias)
        y = self.kernels.batch_norm_forward_eval(x, mean32, var32, weight, bias, eps)
        invstd = (1.0 / xp.sqrt(var + eps)).astype(np.float32)
        self.save_for_backward(x, weight, mean32, invstd)
        self.total, self.collectives = float(total[0]), collectives
        return y

    def backward(self, dy):
        from fastconv.distributed import ReduceOp

        xp = self.xp
        x, weight, mean, invstd = self.saved
        dy = contiguous(xp, dy)
        axes = (0,) + tuple(range(2, x.ndim))
        shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        xc = x - mean.reshape(shape)
        sums = xp.stack([dy.sum(axis=axes, dtype=xp.float64),
                         (dy * xc).sum(axis=axes, dtype=xp.float64)])
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dweight = (sums[1] * invstd).astype(np.float32) if need_w else None
        dbias = sums[0].astype(np.float32) if need_b else None
        dx = None
        if need_x:
            self.collectives.all_reduce_(sums, ReduceOp.SUM)
            mean_dy = (sums[0] / self.total).astype(np.float32).reshape(shape)
            k = (sums[1] / self.total * invstd * invstd).astype(np.float32).reshape(shape)
            dx = (dy - mean_dy - xc * k) * (weight * invstd).reshape(shape)
        return (dx, dweight, dbias) + (None,) * 5


class SyncBatchNorm(_BatchNorm):
    """Batch norm over the global batch of all ranks (inputs (N, C), (N, C, L) or
    (N, C, H, W)); see the module docstring. ``momentum=None``: a cumulative average, as
    torch's."""

    _input_ranks = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, device=None, dtype=None):
        if process_group is not None:
            raise NotImplementedError("SyncBatchNorm: only the default process group is "
                                      "supported (process_group=None)")
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group
        factory_kwargs(self, device, dtype)

    def forward(self, x):
        import fastconv.distributed as dist

        if x.ndim not in self._input_ranks:
            raise ValueError(f"SyncBatchNorm: expected a 2-D, 3-D or 4-D input, got shape "
                             f"{x.shape}")
        factor = self._update_factor()
        batch_stats = self.training or self.running_mean is None
        if not (batch_stats and dist.is_initialized() and dist.get_world_size() > 1):
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                batch_stats, factor, self.eps)
        if x.shape[1] != self.num_features:
            raise ValueError(f"SyncBatchNorm: expected {self.num_features} channels, got "
                             f"input {x.shape}")
        update = self.training and self.running_mean is not None
        return SyncBatchNormTrain.apply(
            x, self.weight, self.bias, self.running_mean.data if update else None,
            self.running_var.data if update else None, float(self.eps), float(factor or 0.0),
            dist._default_group().collectives)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group=None) -> Module:
        """``module`` with every BatchNorm1d/2d inside it replaced by a SyncBatchNorm that
        holds the same parameters and buffers (the same tensors, so an optimizer built on
        the model keeps working) and the same training mode. Returns the converted module
        (``module`` itself unless it is a batch norm)."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group)
            # the tables written in place: the same tensors under the same names, in order
            converted._parameters.update(module._parameters)
            converted._buffers.update(module._buffers)
            converted.train(module.training)
            return converted
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module
