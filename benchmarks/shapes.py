"""Layer shapes of the benchmarked networks: (name, N, C, H, W, OC, K, stride, padding, groups)."""

# Network in Network on CIFAR-10, batch 128 (Lin et al. 2013).
NIN = [
    ("nin.conv1_5x5", 128, 3, 32, 32, 192, 5, 1, 2, 1),
    ("nin.cccp1_1x1", 128, 192, 32, 32, 160, 1, 1, 0, 1),
    ("nin.cccp2_1x1", 128, 160, 32, 32, 96, 1, 1, 0, 1),
    ("nin.conv2_5x5", 128, 96, 16, 16, 192, 5, 1, 2, 1),
    ("nin.cccp3_1x1", 128, 192, 16, 16, 192, 1, 1, 0, 1),
    ("nin.conv3_3x3", 128, 192, 8, 8, 192, 3, 1, 1, 1),
]

# TensorFlow CIFAR-10 tutorial network, batch 128 of 24×24 crops.
TUTORIAL = [
    ("tutorial.conv1_5x5", 128, 3, 24, 24, 64, 5, 1, 2, 1),
    ("tutorial.conv2_5x5", 128, 64, 12, 12, 64, 5, 1, 2, 1),
]

# AlexNet (two towers as groups=2) and GoogLeNet layers at batch 8 (the CPU is small).
ALEXNET = [
    ("alexnet.conv1_11x11s4", 8, 3, 227, 227, 96, 11, 4, 0, 1),
    ("alexnet.conv2_5x5g2", 8, 96, 27, 27, 256, 5, 1, 2, 2),
    ("alexnet.conv3_3x3", 8, 256, 13, 13, 384, 3, 1, 1, 1),
    ("alexnet.conv4_3x3g2", 8, 384, 13, 13, 384, 3, 1, 1, 2),
]
GOOGLENET = [
    ("googlenet.conv1_7x7s2", 8, 3, 224, 224, 64, 7, 2, 3, 1),
    ("googlenet.conv2_3x3", 8, 64, 56, 56, 192, 3, 1, 1, 1),
    ("googlenet.3a_1x1", 8, 192, 28, 28, 64, 1, 1, 0, 1),
    ("googlenet.3a_5x5", 8, 16, 28, 28, 32, 5, 1, 2, 1),
    ("googlenet.4a_3x3", 8, 96, 14, 14, 208, 3, 1, 1, 1),
]

CONV_SHAPES = NIN + TUTORIAL + ALEXNET + GOOGLENET


def conv_flops(N, C, H, W, OC, K, stride, padding, groups):
    """Multiply-adds × 2 of one forward convolution."""
    OH = (H + 2 * padding - K) // stride + 1
    OW = (W + 2 * padding - K) // stride + 1
    return 2.0 * N * OC * OH * OW * (C // groups) * K * K
