/* Python bindings: fastconv._C, one m.def per kernel.
 *
 * The module is private; fastconv/backend/cpu.py wraps it and _C.pyi
 * documents the signatures. Pairs such as stride are (h, w) tuples of ints.
 * Errors: a bad shape, rank, contiguity or value raises ValueError, a wrong
 * dtype TypeError. Every kernel returns new arrays.
 */
#include "gemm_bf16.h"
#include "kernels.h"
#include "microkernel.h"

using namespace pybind11::literals;

PYBIND11_MODULE(_C, m) {
    using namespace fc;
    m.doc() = "fastconv's compiled CPU kernels (private; use fastconv.backend.cpu).";
    m.attr("ABI_VERSION") = kAbiVersion;
    init_microkernels();  // a bad FASTCONV_ISA fails the import here
    init_bf16_kernels();  // likewise FASTCONV_BF16_ISA

    // ---- BLAS and machine
    m.def("load_blas", &load_blas, "path"_a,
          "Load the scipy-openblas32 OpenBLAS from `path` (dlopen, RTLD_LOCAL) and return "
          "blas_info(). Must be called once before any GEMM. Raises ImportError on failure.");
    m.def("blas_info", &blas_info,
          "dict: loaded, path, corename (the kernel set OpenBLAS picked), config, num_threads, "
          "batch_strided (whether cblas_sgemm_batch_strided is available).");
    m.def("cpu_features", &cpu_features,
          "dict of the CPU's SIMD features (avx2, fma, avx512f, ...), the instruction set of the "
          "convolution kernels in use (conv_kernels) and OpenMP thread counts.");
    m.def("set_num_threads", &set_num_threads, "n"_a,
          "Set the OpenMP thread count (of the calling thread) and OpenBLAS's thread count.");
    m.def("get_num_threads", &get_num_threads, "OpenMP's maximum thread count.");
    m.def("cache_info", &cache_info,
          "dict about the cache of freed output blocks (arrays of >= min_block_bytes reuse "
          "memory of the same size): cached_bytes, cached_blocks, hits, misses, limits.");
    m.def("empty_cache", &empty_cache,
          "Return every cached free block, and the scratch buffers (packed columns, Winograd "
          "transforms) of the calling thread and of every OpenMP pool thread, to the operating "
          "system.");
    m.def("gemm", &gemm, "a"_a, "b"_a, "trans_a"_a = false, "trans_b"_a = false,
          "op(a) @ op(b) for 2-D float32 arrays through OpenBLAS sgemm; op transposes when the "
          "flag is set. Returns a new (M, N) array.");

    // ---- bfloat16 products (autocast)
    m.def("bf16_kernels", &bf16_kernels,
          "The bfloat16 GEMM variant in use: amx, avx512bf16, emulated, emulated_amx or none. A "
          "real one is checked against its emulation on the first call (RuntimeWarning and "
          "'none' if they disagree).");
    m.def("_set_bf16_isa", &set_bf16_kernels, "name"_a,
          "Tests only: switch the bfloat16 GEMM variant (the names and checks of "
          "FASTCONV_BF16_ISA; emulated, emulated_amx and none always run).");
    m.def("_bf16_self_test", &bf16_self_test, "variant"_a, "reference"_a,
          "Tests only: the check a real bfloat16 variant gets on first use, of variant against "
          "reference; returns '' if they agree, else the first disagreement.");
    m.def("gemm_bf16", &gemm_bf16_py, "a"_a, "b"_a, "trans_a"_a = false, "trans_b"_a = false,
          "bias"_a = py::none(), "out"_a = py::none(),
          "op(a) @ op(b) (+ bias[:, None]) for 2-D float32 arrays with any strides, each value "
          "rounded to bfloat16 (nearest even) as it is packed, float32 sums; with out (M, N), "
          "C-contiguous, the product is added to it and out returned. ValueError if "
          "bf16_kernels() is 'none'.");
    m.def("conv2d_forward_bf16", &conv2d_forward_bf16, "x"_a, "w"_a, "b"_a, "stride"_a,
          "padding"_a, "dilation"_a, "groups"_a, "relu"_a = false,
          "conv2d_forward with x and w rounded to bfloat16 and the products on the bfloat16 "
          "GEMM (b is added as given, first); y rounded to bfloat16, then max(y, 0) with "
          "relu (NaN and -0 kept, as relu_forward).");
    m.def("conv2d_backward_bf16", &conv2d_backward_bf16, "x"_a, "w"_a, "dy"_a, "stride"_a,
          "padding"_a, "dilation"_a, "groups"_a, "need_dx"_a = true, "need_dw"_a = true,
          "need_db"_a = false,
          "(dx, dw, db) of conv2d_forward_bf16 on the bfloat16 GEMM (x, w, dy rounded as packed); "
          "dx rounded to bfloat16, dw and db summed across images in double. None where need_* "
          "is False.");

    // ---- convolution
    m.def("conv2d_forward", &conv2d_forward, "x"_a, "w"_a, "b"_a, "stride"_a, "padding"_a,
          "dilation"_a, "groups"_a,
          "y = conv2d(x, w, b): x (N, C, H, W), w (OC, C/groups, KH, KW), b (OC,) or None; "
          "returns y (N, OC, OH, OW). Winograd for stride-1 3x3 / 5x5 layers with enough "
          "channels, else GEMMs over the column matrix packed from x (route table: "
          "csrc/conv.cpp).");
    m.def("conv2d_backward", &conv2d_backward, "x"_a, "w"_a, "dy"_a, "stride"_a, "padding"_a,
          "dilation"_a, "groups"_a, "need_dx"_a = true, "need_dw"_a = true, "need_db"_a = true,
          "Gradients of conv2d_forward given dy (N, OC, OH, OW). Returns (dx, dw, db); an entry "
          "is None when its need_* flag is False.");

    // ---- pooling
    m.def("max_pool2d_forward", &max_pool2d_forward, "x"_a, "kernel"_a, "stride"_a, "padding"_a,
          "ceil_mode"_a, "dilation"_a = Pair{1, 1},
          "Max pooling of x (N, C, H, W). Returns (y, indices): indices int32 (N, C, OH, OW), "
          "the flat offset ih*W + iw of the max in its input plane. Ties: the first maximum in "
          "row-major window order; padding never wins; NaN propagates.");
    m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward, "x"_a, "output_size"_a,
          "Max over PyTorch's adaptive windows (rows [i*H/OH, ceil((i+1)*H/OH)), columns "
          "likewise) of x (N, C, H, W). Returns (y, indices) as max_pool2d_forward; its "
          "backward is max_pool2d_backward.");
    m.def("max_pool2d_backward", &max_pool2d_backward, "dy"_a, "indices"_a, "x_shape"_a,
          "dx (x_shape) with dy scattered (summed) onto the positions in indices.");
    m.def("avg_pool2d_forward", &avg_pool2d_forward, "x"_a, "kernel"_a, "stride"_a, "padding"_a,
          "ceil_mode"_a, "count_include_pad"_a,
          "Average pooling of x (N, C, H, W), PyTorch's divisor rule for count_include_pad and "
          "ceil_mode.");
    m.def("avg_pool2d_backward", &avg_pool2d_backward, "dy"_a, "x_shape"_a, "kernel"_a,
          "stride"_a, "padding"_a, "ceil_mode"_a, "count_include_pad"_a,
          "dx (x_shape): each dy spread evenly (dy / divisor) over its window.");

    // ---- local response normalisation
    m.def("lrn_forward", &lrn_forward, "x"_a, "size"_a, "alpha"_a, "beta"_a, "k"_a,
          "Across-channel LRN of x (N, C, ...). scale[c] = k + alpha/size * "
          "sum_{j=c-size//2}^{c+(size-1)//2} x[j]^2, y = x * scale^-beta. Returns (y, scale).");
    m.def("lrn_backward", &lrn_backward, "x"_a, "y"_a, "scale"_a, "dy"_a, "size"_a, "alpha"_a,
          "beta"_a, "k"_a, "dx of lrn_forward given its x, y, scale and dy.");

    // ---- batch normalisation
    m.def("batch_norm_forward_train", &batch_norm_forward_train, "x"_a, "weight"_a, "bias"_a,
          "eps"_a,
          "Batch norm with batch statistics over all axes but 1 of x (N, C) or (N, C, H, W). "
          "weight/bias (C,) or None. Returns (y, mean, var), var biased.");
    m.def("batch_norm_forward_eval", &batch_norm_forward_eval, "x"_a, "mean"_a, "var"_a,
          "weight"_a, "bias"_a, "eps"_a,
          "y = (x - mean) / sqrt(var + eps) * weight + bias with the given statistics.");
    m.def("batch_norm_backward", &batch_norm_backward, "x"_a, "weight"_a, "mean"_a, "var"_a,
          "eps"_a, "dy"_a,
          "Training-mode gradients (batch statistics mean, var from the forward). Returns "
          "(dx, dweight, dbias).");
    m.def("batch_norm_max_pool2d_forward", &batch_norm_max_pool2d_forward, "x"_a, "weight"_a, "bias"_a,
          "eps"_a, "kernel"_a, "stride"_a, "padding"_a, "ceil_mode"_a, "dilation"_a = Pair{1, 1},
          "max_pool2d_forward of batch_norm_forward_train's y for x (N, C, H, W), y never stored. "
          "Returns (pooled, indices, mean, var), each as the two kernels give it.");
    m.def("batch_norm_max_pool2d_backward", &batch_norm_max_pool2d_backward, "x"_a, "weight"_a, "mean"_a,
          "var"_a, "eps"_a, "dy"_a, "indices"_a,
          "Gradients of batch_norm_max_pool2d_forward given dy of the pooled output: "
          "batch_norm_backward of max_pool2d_backward(dy, indices). Returns (dx, dweight, dbias).");

    // ---- activations
    m.def("relu_forward", &relu_forward, "x"_a, "y = max(x, 0) for any shape.");
    m.def("relu_backward", &relu_backward, "y"_a, "dy"_a, "dx = dy where y > 0, else 0.");
    m.def("random_uniform", &random_uniform, "shape"_a, "seed"_a, "offset"_a = 0,
          "Uniform [0, 1) float32 draws (24 bits): Philox4x32-10 with key seed and counter "
          "(i / 4, offset), as the CUDA backend's random_uniform.");
    m.def("dropout_forward", &dropout_forward, "x"_a, "p"_a, "seed"_a,
          "(y, mask): mask = 1 / (1 - p) where random_uniform(x.shape, seed) >= p, else 0; "
          "y = x * mask.");
    m.def("dropout_backward", &dropout_backward, "dy"_a, "mask"_a, "dx = dy * mask.");
    m.def("round_bf16_inplace", &round_bf16_inplace, "x"_a,
          "Round each float32 of x, in place, to the nearest bfloat16 (ties to even).");
    m.def("add_inplace", &add_inplace, "dst"_a, "src"_a,
          "dst += src for float32 C-contiguous arrays of one shape (not overlapping).");

    // ---- activations beyond ReLU (the backward passes take x, or y for sigmoid and tanh)
    m.def("leaky_relu_forward", &leaky_relu_forward, "x"_a, "negative_slope"_a,
          "y = x > 0 ? x : negative_slope * x.");
    m.def("leaky_relu_backward", &leaky_relu_backward, "x"_a, "dy"_a, "negative_slope"_a,
          "dx = dy * (x > 0 ? 1 : negative_slope).");
    m.def("elu_forward", &elu_forward, "x"_a, "alpha"_a, "y = x > 0 ? x : alpha * (exp(x) - 1).");
    m.def("elu_backward", &elu_backward, "x"_a, "dy"_a, "alpha"_a,
          "dx = dy * (x > 0 ? 1 : alpha * exp(x)).");
    m.def("gelu_forward", &gelu_forward, "x"_a, "tanh_approximation"_a,
          "y = x * Phi(x) (exact normal CDF), or x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).");
    m.def("gelu_backward", &gelu_backward, "x"_a, "dy"_a, "tanh_approximation"_a,
          "dx of gelu_forward.");
    m.def("silu_forward", &silu_forward, "x"_a, "y = x * sigmoid(x).");
    m.def("silu_backward", &silu_backward, "x"_a, "dy"_a, "dx = dy * s * (1 + x (1 - s)).");
    m.def("sigmoid_forward", &sigmoid_forward, "x"_a, "y = 1 / (1 + exp(-x)).");
    m.def("sigmoid_backward", &sigmoid_backward, "y"_a, "dy"_a, "dx = dy * y * (1 - y).");
    m.def("tanh_forward", &tanh_forward, "x"_a, "y = tanh(x).");
    m.def("tanh_backward", &tanh_backward, "y"_a, "dy"_a, "dx = dy * (1 - y^2).");

    // ---- group and layer normalisation
    m.def("group_norm_forward", &group_norm_forward, "x"_a, "weight"_a, "bias"_a, "groups"_a,
          "eps"_a,
          "Group norm of x (N, C, *): statistics per (n, group of C/groups channels), "
          "weight/bias (C,) or None. Returns (y, mean, rstd), mean and rstd (N * groups,). "
          "Layer norm is x viewed as (rows, K) with groups = 1.");
    m.def("group_norm_backward", &group_norm_backward, "x"_a, "weight"_a, "mean"_a, "rstd"_a,
          "dy"_a, "groups"_a, "need_dx"_a = true, "need_dparams"_a = true,
          "Returns (dx, dweight, dbias); dx is None unless need_dx, dweight and dbias None "
          "unless need_dparams.");

    // ---- padding and resizing
    m.def("pad_forward", &pad_forward, "x"_a, "index"_a, "value"_a,
          "y gathered from x through one int64 table per dim (None keeps the dim): output "
          "position o along dim d reads index[d][o], or is value where that is -1.");
    m.def("pad_backward", &pad_backward, "dy"_a, "x_shape"_a, "index"_a,
          "dx (x_shape): each dy added onto the input position it was read from.");
    m.def("interpolate_forward", &interpolate_forward, "x"_a, "h_index"_a, "h_weight"_a,
          "w_index"_a, "w_weight"_a,
          "Nearest (weights None) or bilinear resize of x (N, C, H, W): output row oh reads rows "
          "h_index[oh] and min(h_index[oh] + 1, H - 1) with weights 1 - h_weight[oh] and "
          "h_weight[oh]; columns likewise.");
    m.def("interpolate_backward", &interpolate_backward, "dy"_a, "x_shape"_a, "h_index"_a,
          "h_weight"_a, "w_index"_a, "w_weight"_a,
          "dx (x_shape) of interpolate_forward: each dy added to the inputs it read, weighted.");

    // ---- loss
    m.def("softmax_cross_entropy_forward", &softmax_cross_entropy_forward, "logits"_a, "target"_a,
          "label_smoothing"_a = 0.f,
          "Mean cross-entropy of softmax(logits) (N, K) against int64 targets (N,), with "
          "PyTorch's label smoothing. Returns (loss: float, prob (N, K)).");
    m.def("softmax_cross_entropy_backward", &softmax_cross_entropy_backward, "prob"_a, "target"_a,
          "label_smoothing"_a, "dloss"_a,
          "dlogits = dloss / N * (prob - (1 - ls) * onehot(target) - ls / K).");
}
