/* Winograd convolution F(2x2, KxK) for stride-1 3x3 and 5x5 layers (winograd.cpp). */
#pragma once

#include "common.h"

namespace fc {

// One stride-1, dilation-1 convolution with a square K x K kernel and G groups
// (C and OC count all groups' channels; w is (OC, C/G, K, K)).
struct WinoConv {
    index_t N, C, OC, H, W, K, PH, PW, G;
    index_t Cg() const { return C / G; }
    index_t OCg() const { return OC / G; }
    index_t OH() const { return H + 2 * PH - K + 1; }
    index_t OW() const { return W + 2 * PW - K + 1; }
};

// y (N, OC, OH, OW) = conv(x, w) + b; b may be null.
void winograd_forward(const WinoConv& s, const float* x, const float* w, const float* b, float* y);

// dx (N, C, H, W) and dw (OC, C/G, K, K) from dy; either output may be null.
// Both are written (not accumulated into).
void winograd_backward(const WinoConv& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw);

}  // namespace fc
