"""PyTorch twins of the model-zoo networks, for the benchmarks' baselines.

Each builds, with torch.nn, the same layers in the same order as
``models.get_model(name)``, so both libraries do the same arithmetic.
"""


def torch_network(name: str, num_classes: int = 10):
    """The torch.nn twin of models.get_model(name) (same layers, same shapes)."""
    import torch

    nn = torch.nn
    if name == "nin_cifar":
        def mlpconv(cin, widths, k, final_relu=True):
            c1, c2, c3 = widths
            layers = [nn.Conv2d(cin, c1, k, padding=k // 2), nn.ReLU(), nn.Conv2d(c1, c2, 1),
                      nn.ReLU(), nn.Conv2d(c2, c3, 1)]
            return layers + ([nn.ReLU()] if final_relu else [])
        return nn.Sequential(
            *mlpconv(3, (192, 160, 96), 5), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Dropout(0.5),
            *mlpconv(96, (192, 192, 192), 5), nn.AvgPool2d(3, 2, ceil_mode=True),
            nn.Dropout(0.5), *mlpconv(192, (192, 192, num_classes), 3),
            nn.AdaptiveAvgPool2d(1), nn.Flatten())
    if name == "cifar10_tutorial":  # TF's LRN(depth_radius 4, alpha 0.001/9) in PyTorch's terms
        lrn = dict(size=9, alpha=0.001, beta=0.75, k=1.0)
        return nn.Sequential(
            nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.LocalResponseNorm(**lrn), nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(),
            nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2, ceil_mode=True), nn.Flatten(),
            nn.Linear(64 * 6 * 6, 384), nn.ReLU(), nn.Linear(384, 192), nn.ReLU(),
            nn.Linear(192, num_classes))
    if name == "alexnet_owt":   # torchvision's AlexNet
        return nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.AdaptiveAvgPool2d(6), nn.Flatten(),
            nn.Dropout(0.5), nn.Linear(256 * 36, 4096), nn.ReLU(),
            nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))
    if name == "alexnet":       # 2012: towers as groups=2, LRN (alpha given per window)
        lrn = dict(size=5, alpha=5e-4, beta=0.75, k=2.0)
        return nn.Sequential(
            nn.Conv2d(3, 96, 11, 4), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
            nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**lrn),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Flatten(), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5), nn.Linear(4096, num_classes))
    if name == "googlenet":     # Inception v1, Table 1, real 5x5 branches, LRN stem, no aux
        def conv(cin, cout, k, s=1, p=0):
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, p), nn.ReLU())

        class Inception(nn.Module):
            def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
                super().__init__()
                self.b1 = conv(cin, c1, 1)
                self.b2 = nn.Sequential(conv(cin, c3r, 1), conv(c3r, c3, 3, p=1))
                self.b3 = nn.Sequential(conv(cin, c5r, 1), conv(c5r, c5, 5, p=2))
                self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(cin, pp, 1))

            def forward(self, x):
                return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)

        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
        return nn.Sequential(
            conv(3, 64, 7, 2, 3), nn.MaxPool2d(3, 2, ceil_mode=True), nn.LocalResponseNorm(**lrn),
            conv(64, 64, 1), conv(64, 192, 3, p=1), nn.LocalResponseNorm(**lrn),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
            Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
            Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(3, 2, ceil_mode=True),
            Inception(832, 256, 160, 320, 32, 128, 128),
            Inception(832, 384, 192, 384, 48, 128, 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4), nn.Linear(1024, num_classes))
    raise KeyError(name)
