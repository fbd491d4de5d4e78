// optim.cu: fused optimizer updates, one kernel per parameter tensor and step, with PyTorch's
// update rules (torch.optim.SGD, Adam, AdamW).
//
// What it computes (float32, all tensors of the parameter's shape, updated in place)
//   sgd_update    d = g + wd * p;
//                 momentum: buf = has_buf ? momentum * buf + (1 - dampening) * d : d;
//                           d = nesterov ? d + momentum * buf : buf;
//                 p -= lr * d
//   adam_update   decoupled (AdamW): p *= 1 - lr * wd;  otherwise g += wd * p;
//                 m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//                 p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   lr and the step count t are read from device memory when a pointer is given (so that a
//   captured CUDA graph picks up a new learning rate or step on every replay), otherwise the
//   by-value arguments are used.
//
// How the work maps onto threads and blocks
//   One thread per parameter element, 1-D grid of 256-thread blocks, grid-stride loop. Every
//   thread reads and writes only its own element of p, grad and the state buffers.
//
// Gradient convention (whole backend): parameter gradients accumulate (+=) in their buffers and
// activation gradients are written (=); these kernels only read gradients, and write the
// parameters and optimizer state in place.

extern "C" __global__ void sgd_update(float* __restrict__ p, const float* __restrict__ g,
                                      float* __restrict__ buf, long long n, float lr,
                                      const float* __restrict__ lr_ptr, float momentum,
                                      float dampening, float weight_decay, int nesterov,
                                      int has_buf)
{
    const float step_lr = lr_ptr != 0 ? lr_ptr[0] : lr;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float d = g[i];
        const float w = p[i];
        if (weight_decay != 0.0f) d += weight_decay * w;
        if (momentum != 0.0f) {
            const float b = has_buf ? momentum * buf[i] + (1.0f - dampening) * d : d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] = w - step_lr * d;
    }
}

extern "C" __global__ void adam_update(float* __restrict__ p, const float* __restrict__ g,
                                       float* __restrict__ m, float* __restrict__ v,
                                       long long n, float lr, const float* __restrict__ lr_ptr,
                                       float beta1, float beta2, float eps, float weight_decay,
                                       int decoupled, float step,
                                       const float* __restrict__ step_ptr)
{
    const float step_lr = lr_ptr != 0 ? lr_ptr[0] : lr;
    const float t = step_ptr != 0 ? step_ptr[0] : step;
    const float bc1 = 1.0f - powf(beta1, t);
    const float bc2_sqrt = sqrtf(1.0f - powf(beta2, t));
    const float step_size = step_lr / bc1;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        float w = p[i];
        float gi = g[i];
        if (weight_decay != 0.0f) {
            if (decoupled) w *= 1.0f - step_lr * weight_decay;
            else gi += weight_decay * w;
        }
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = w - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
    }
}
