"""``torch.nn.DataParallel``: one process driving several GPUs by splitting each batch.

fastconv's way to use several GPUs (or CPUs) is DistributedDataParallel, one process each.
``DataParallel(model)`` runs the model on its one device, as torch's does on a machine with
a single GPU or none, so scripts that wrap their model unconditionally run unchanged and their
state_dicts keep torch's ``module.`` prefix. Asked for several devices, it says so and still
runs on one.
"""

from __future__ import annotations

import warnings

from fastconv.nn.module import Module


class DataParallel(Module):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DataParallel wraps a Module, got {type(module).__name__}")
        self.module = module
        self.device_ids = None if device_ids is None else list(device_ids)
        self.output_device, self.dim = output_device, dim
        if self.device_ids is None:
            from fastconv import cuda

            several = cuda.is_available() and cuda.device_count() > 1
        else:
            several = len(self.device_ids) > 1
        if several:
            warnings.warn("DataParallel runs the module on one device in fastconv; for several "
                          "GPUs use DistributedDataParallel with one process per GPU (mpirun)",
                          UserWarning, stacklevel=2)

    def forward(self, *inputs, **kwargs):
        return self.module(*inputs, **kwargs)
