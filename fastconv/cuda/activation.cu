// activation.cu: leaky ReLU, ELU, GELU (exact and tanh form), SiLU, sigmoid and tanh over
// float32 (CUDA twin of csrc/activation.cpp).
//
// What it computes (PyTorch's definitions; any shape, treated as n flat elements)
//   leaky_relu_forward   y = x > 0 ? x : slope * x       leaky_relu_backward  dx = dy * (x > 0 ? 1 : slope)
//   elu_forward          y = x > 0 ? x : alpha (e^x - 1) elu_backward         dx = dy * (x > 0 ? 1 : alpha e^x)
//   gelu_forward         y = x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2, or with tanh_form
//                        y = x sigmoid(2u) = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
//   gelu_backward        dx = dy * (Phi(x) + x phi(x)), or dy * (q + 2 x q (1 - q) u'), q = sigmoid(2u)
//   silu_forward         y = x s, s = sigmoid(x)          silu_backward       dx = dy * s (1 + x (1 - s))
//   sigmoid_forward      y = 1 / (1 + e^-x)               sigmoid_backward    dx = dy * y (1 - y)
//   tanh_forward         y = tanh(x)                      tanh_backward       dx = dy * (1 - y^2)
//   The backward kernels read the forward's input x, except sigmoid and tanh (its output y).
//
// How the work maps onto threads and blocks
//   1-D grid of 256-thread blocks with a grid-stride loop, one thread per element.
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=). These ops have no parameters.

#define FC_GRID_LOOP(i, n)                                                          \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);   \
         i += (long long)blockDim.x * gridDim.x)

#define FC_SQRT_2_OVER_PI 0.7978845608f
#define FC_GELU_CUBIC 0.044715f
#define FC_INV_SQRT_2 0.7071067812f
#define FC_INV_SQRT_2PI 0.3989422804f

__device__ __forceinline__ float fc_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

extern "C" __global__ void leaky_relu_forward(const float* __restrict__ x, float* __restrict__ y,
                                              long long n, float slope)
{
    FC_GRID_LOOP(i, n) { const float v = x[i]; y[i] = v > 0.0f ? v : v * slope; }
}

extern "C" __global__ void leaky_relu_backward(const float* __restrict__ x,
                                               const float* __restrict__ dy,
                                               float* __restrict__ dx, long long n, float slope)
{
    FC_GRID_LOOP(i, n) { dx[i] = x[i] > 0.0f ? dy[i] : dy[i] * slope; }
}

extern "C" __global__ void elu_forward(const float* __restrict__ x, float* __restrict__ y,
                                       long long n, float alpha)
{
    FC_GRID_LOOP(i, n) { const float v = x[i]; y[i] = v > 0.0f ? v : alpha * expm1f(v); }
}

extern "C" __global__ void elu_backward(const float* __restrict__ x, const float* __restrict__ dy,
                                        float* __restrict__ dx, long long n, float alpha)
{
    FC_GRID_LOOP(i, n) {
        const float v = x[i];
        dx[i] = v > 0.0f ? dy[i] : dy[i] * (alpha * expf(v));
    }
}

extern "C" __global__ void gelu_forward(const float* __restrict__ x, float* __restrict__ y,
                                        long long n, int tanh_form)
{
    FC_GRID_LOOP(i, n) {
        const float v = x[i];
        if (tanh_form) {
            const float u = FC_SQRT_2_OVER_PI * (v + FC_GELU_CUBIC * v * v * v);
            y[i] = v * fc_sigmoid(2.0f * u);
        } else {
            y[i] = v * (0.5f * erfcf(-v * FC_INV_SQRT_2));
        }
    }
}

extern "C" __global__ void gelu_backward(const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dx, long long n, int tanh_form)
{
    FC_GRID_LOOP(i, n) {
        const float v = x[i];
        float grad;
        if (tanh_form) {
            const float u = FC_SQRT_2_OVER_PI * (v + FC_GELU_CUBIC * v * v * v);
            const float du = FC_SQRT_2_OVER_PI * (1.0f + 3.0f * FC_GELU_CUBIC * v * v);
            const float q = fc_sigmoid(2.0f * u);
            grad = q + 2.0f * v * q * (1.0f - q) * du;
        } else {
            grad = 0.5f * erfcf(-v * FC_INV_SQRT_2) + v * FC_INV_SQRT_2PI * expf(-0.5f * v * v);
        }
        dx[i] = dy[i] * grad;
    }
}

extern "C" __global__ void silu_forward(const float* __restrict__ x, float* __restrict__ y,
                                        long long n)
{
    FC_GRID_LOOP(i, n) { y[i] = x[i] * fc_sigmoid(x[i]); }
}

extern "C" __global__ void silu_backward(const float* __restrict__ x, const float* __restrict__ dy,
                                         float* __restrict__ dx, long long n)
{
    FC_GRID_LOOP(i, n) {
        const float q = fc_sigmoid(x[i]);
        dx[i] = dy[i] * (q * (1.0f + x[i] * (1.0f - q)));
    }
}

extern "C" __global__ void sigmoid_forward(const float* __restrict__ x, float* __restrict__ y,
                                           long long n)
{
    FC_GRID_LOOP(i, n) { y[i] = fc_sigmoid(x[i]); }
}

extern "C" __global__ void sigmoid_backward(const float* __restrict__ y,
                                            const float* __restrict__ dy,
                                            float* __restrict__ dx, long long n)
{
    FC_GRID_LOOP(i, n) { dx[i] = dy[i] * (y[i] * (1.0f - y[i])); }
}

extern "C" __global__ void tanh_forward(const float* __restrict__ x, float* __restrict__ y,
                                        long long n)
{
    FC_GRID_LOOP(i, n) { y[i] = tanhf(x[i]); }
}

extern "C" __global__ void tanh_backward(const float* __restrict__ y, const float* __restrict__ dy,
                                         float* __restrict__ dx, long long n)
{
    FC_GRID_LOOP(i, n) { dx[i] = dy[i] * (1.0f - y[i] * y[i]); }
}
