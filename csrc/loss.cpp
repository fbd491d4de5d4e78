/* Softmax cross-entropy with label smoothing (PyTorch's definition).
 *
 * What: for row i with logits z and target t, logp = z - logsumexp(z),
 *   loss_i = (1 - ls) * (-logp[t]) + ls * mean_k(-logp[k])
 *   loss   = mean_i loss_i                                   (a Python float)
 * and prob = softmax(z) is returned for the backward pass:
 *   dlogits = dloss / N * (prob - (1 - ls) * onehot(t) - ls / K)
 * Sums and the log-sum-exp run in double; the max is subtracted first.
 * Layout: logits / prob (N, K) float32 row-major, target (N,) int64.
 * Threads: OpenMP over rows; the batch mean is an OpenMP reduction.
 * Gradients: dlogits is written (returned new).
 */
#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels.h"

namespace fc {

namespace {

void check_targets(const char* fn, const std::int64_t* T, index_t N, index_t K) {
    for (index_t i = 0; i < N; ++i)
        require(T[i] >= 0 && T[i] < K, fn, ": target[", i, "] = ", T[i],
                " is not a class index in [0, ", K, ")");
}

}  // namespace

py::tuple softmax_cross_entropy_forward(const py::array& logits, const py::array& target,
                                        float label_smoothing) {
    const char* fn = "softmax_cross_entropy_forward";
    const float* Z = float_data(logits, fn, "logits");
    const std::int64_t* T = int_data<std::int64_t>(target, fn, "target", "int64");
    require_ndim(logits, 2, fn, "logits");
    const index_t N = logits.shape(0), K = logits.shape(1);
    require_shape(target, {N}, fn, "target");
    require(K >= 1, fn, ": logits need at least one class, got shape ", shape_str(logits));
    check_targets(fn, T, N, K);
    auto prob = new_float({N, K});
    float* PR = mut(prob);
    double total = 0;
    {
        py::gil_scoped_release nogil;
        const double ls = label_smoothing;
#pragma omp parallel for schedule(static) reduction(+ : total) if (N * K > 4096)
        for (index_t i = 0; i < N; ++i) {
            const float* z = Z + i * K;
            float* p = PR + i * K;
            const double zmax = *std::max_element(z, z + K);
            double sum_exp = 0, sum_z = 0;
            for (index_t k = 0; k < K; ++k) {
                const double e = std::exp(double(z[k]) - zmax);
                p[k] = static_cast<float>(e);
                sum_exp += e;
                sum_z += z[k];
            }
            const double lse = zmax + std::log(sum_exp);
            for (index_t k = 0; k < K; ++k) p[k] = static_cast<float>(p[k] / sum_exp);
            const double nll = lse - z[T[i]];
            // mean_k(-logp_k), only when ls > 0: ls * smooth is NaN for a -inf logit
            const double smooth = ls > 0 ? ls * (lse - sum_z / double(K)) : 0.0;
            total += (1.0 - ls) * nll + smooth;
        }
    }
    const double loss = N > 0 ? total / double(N) : std::numeric_limits<double>::quiet_NaN();
    return py::make_tuple(loss, prob);
}

py::array softmax_cross_entropy_backward(const py::array& prob, const py::array& target,
                                         float label_smoothing, float dloss) {
    const char* fn = "softmax_cross_entropy_backward";
    const float* PR = float_data(prob, fn, "prob");
    const std::int64_t* T = int_data<std::int64_t>(target, fn, "target", "int64");
    require_ndim(prob, 2, fn, "prob");
    const index_t N = prob.shape(0), K = prob.shape(1);
    require_shape(target, {N}, fn, "target");
    check_targets(fn, T, N, K);
    auto dlogits = new_float({N, K});
    float* D = mut(dlogits);
    {
        py::gil_scoped_release nogil;
        const float g = N > 0 ? dloss / static_cast<float>(N) : 0.f;
        const float off = label_smoothing / static_cast<float>(K);
        const float hit = 1.f - label_smoothing;
#pragma omp parallel for schedule(static) if (N * K > 4096)
        for (index_t i = 0; i < N; ++i) {
            for (index_t k = 0; k < K; ++k) D[i * K + k] = g * (PR[i * K + k] - off);
            D[i * K + T[i]] -= g * hit;
        }
    }
    return std::move(dlogits);
}

}  // namespace fc
