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


def torchvision_network(name: str, num_classes: int = 1000, aux_logits: bool = True,
                        transform_input: bool = False):
    """torchvision's AlexNet, GoogLeNet and Inception3, rebuilt with torch.nn under
    torchvision's module names, so their state dicts have torchvision's keys and layout
    (tests make "torchvision weights" from them without torchvision or a download)."""
    import torch

    nn, F = torch.nn, torch.nn.functional

    def transform(x):
        if not transform_input:
            return x
        return torch.cat([torch.unsqueeze(x[:, i], 1) * (s / 0.5) + (m - 0.5) / 0.5
                          for i, (m, s) in enumerate(zip((0.485, 0.456, 0.406),
                                                         (0.229, 0.224, 0.225)))], 1)

    class BasicConv2d(nn.Module):
        def __init__(self, cin, cout, **kw):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
            self.bn = nn.BatchNorm2d(cout, eps=0.001)

        def forward(self, x):
            return F.relu(self.bn(self.conv(x)))

    if name == "alexnet_owt":
        class AlexNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = torch_network("alexnet_owt", num_classes)[:13]
                self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
                self.classifier = nn.Sequential(
                    nn.Dropout(0.5), nn.Linear(256 * 36, 4096), nn.ReLU(), nn.Dropout(0.5),
                    nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, num_classes))

            def forward(self, x):
                return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
        return AlexNet()

    if name == "googlenet":
        class Inception(nn.Module):
            def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
                super().__init__()
                self.branch1 = BasicConv2d(cin, c1, kernel_size=1)
                self.branch2 = nn.Sequential(BasicConv2d(cin, c3r, kernel_size=1),
                                             BasicConv2d(c3r, c3, kernel_size=3, padding=1))
                self.branch3 = nn.Sequential(BasicConv2d(cin, c5r, kernel_size=1),
                                             BasicConv2d(c5r, c5, kernel_size=3, padding=1))
                self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True),
                                             BasicConv2d(cin, pp, kernel_size=1))

            def forward(self, x):
                return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x),
                                  self.branch4(x)], 1)

        class InceptionAux(nn.Module):
            def __init__(self, cin):
                super().__init__()
                self.conv = BasicConv2d(cin, 128, kernel_size=1)
                self.fc1 = nn.Linear(2048, 1024)
                self.fc2 = nn.Linear(1024, num_classes)
                self.dropout = nn.Dropout(0.7)

            def forward(self, x):
                x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
                return self.fc2(self.dropout(F.relu(self.fc1(x))))

        class GoogLeNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
                self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
                self.conv2 = BasicConv2d(64, 64, kernel_size=1)
                self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
                self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
                self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
                self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
                self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
                self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
                self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
                self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
                self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
                self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
                self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
                if aux_logits:
                    self.aux1, self.aux2 = InceptionAux(512), InceptionAux(528)
                self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
                self.dropout = nn.Dropout(0.2)
                self.fc = nn.Linear(1024, num_classes)

            def forward(self, x):
                x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(transform(x))))))
                x = self.maxpool3(self.inception3b(self.inception3a(x)))
                x = self.inception4d(self.inception4c(self.inception4b(self.inception4a(x))))
                x = self.maxpool4(self.inception4e(x))
                x = self.avgpool(self.inception5b(self.inception5a(x)))
                return self.fc(self.dropout(torch.flatten(x, 1)))
        return GoogLeNet()

    if name == "inception_v3":
        def avg3(x):
            return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)

        class InceptionA(nn.Module):
            def __init__(self, cin, pool_features):
                super().__init__()
                self.branch1x1 = BasicConv2d(cin, 64, kernel_size=1)
                self.branch5x5_1 = BasicConv2d(cin, 48, kernel_size=1)
                self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
                self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
                self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
                self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
                self.branch_pool = BasicConv2d(cin, pool_features, kernel_size=1)

            def forward(self, x):
                return torch.cat([
                    self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                    self.branch_pool(avg3(x))], 1)

        class InceptionB(nn.Module):
            def __init__(self, cin):
                super().__init__()
                self.branch3x3 = BasicConv2d(cin, 384, kernel_size=3, stride=2)
                self.branch3x3dbl_1 = BasicConv2d(cin, 64, kernel_size=1)
                self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
                self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

            def forward(self, x):
                return torch.cat([
                    self.branch3x3(x),
                    self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                    F.max_pool2d(x, kernel_size=3, stride=2)], 1)

        class InceptionC(nn.Module):
            def __init__(self, cin, c7):
                super().__init__()
                self.branch1x1 = BasicConv2d(cin, 192, kernel_size=1)
                self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
                self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
                self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
                self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
                self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
                self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
                self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
                self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
                self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

            def forward(self, x):
                b3 = self.branch7x7dbl_3(self.branch7x7dbl_2(self.branch7x7dbl_1(x)))
                return torch.cat([
                    self.branch1x1(x), self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
                    self.branch7x7dbl_5(self.branch7x7dbl_4(b3)),
                    self.branch_pool(avg3(x))], 1)

        class InceptionD(nn.Module):
            def __init__(self, cin):
                super().__init__()
                self.branch3x3_1 = BasicConv2d(cin, 192, kernel_size=1)
                self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
                self.branch7x7x3_1 = BasicConv2d(cin, 192, kernel_size=1)
                self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
                self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
                self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

            def forward(self, x):
                b2 = self.branch7x7x3_2(self.branch7x7x3_1(x))
                return torch.cat([
                    self.branch3x3_2(self.branch3x3_1(x)),
                    self.branch7x7x3_4(self.branch7x7x3_3(b2)),
                    F.max_pool2d(x, kernel_size=3, stride=2)], 1)

        class InceptionE(nn.Module):
            def __init__(self, cin):
                super().__init__()
                self.branch1x1 = BasicConv2d(cin, 320, kernel_size=1)
                self.branch3x3_1 = BasicConv2d(cin, 384, kernel_size=1)
                self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
                self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
                self.branch3x3dbl_1 = BasicConv2d(cin, 448, kernel_size=1)
                self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
                self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
                self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
                self.branch_pool = BasicConv2d(cin, 192, kernel_size=1)

            def forward(self, x):
                b2 = self.branch3x3_1(x)
                b3 = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
                return torch.cat([
                    self.branch1x1(x),
                    torch.cat([self.branch3x3_2a(b2), self.branch3x3_2b(b2)], 1),
                    torch.cat([self.branch3x3dbl_3a(b3), self.branch3x3dbl_3b(b3)], 1),
                    self.branch_pool(avg3(x))], 1)

        class InceptionAux(nn.Module):
            def __init__(self, cin):
                super().__init__()
                self.conv0 = BasicConv2d(cin, 128, kernel_size=1)
                self.conv1 = BasicConv2d(128, 768, kernel_size=5)
                self.fc = nn.Linear(768, num_classes)

            def forward(self, x):
                x = self.conv1(self.conv0(F.avg_pool2d(x, kernel_size=5, stride=3)))
                return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, (1, 1)), 1))

        class Inception3(nn.Module):
            def __init__(self):
                super().__init__()
                self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
                self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
                self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
                self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
                self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
                self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
                self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
                self.Mixed_5b = InceptionA(192, pool_features=32)
                self.Mixed_5c = InceptionA(256, pool_features=64)
                self.Mixed_5d = InceptionA(288, pool_features=64)
                self.Mixed_6a = InceptionB(288)
                self.Mixed_6b = InceptionC(768, c7=128)
                self.Mixed_6c = InceptionC(768, c7=160)
                self.Mixed_6d = InceptionC(768, c7=160)
                self.Mixed_6e = InceptionC(768, c7=192)
                if aux_logits:
                    self.AuxLogits = InceptionAux(768)
                self.Mixed_7a = InceptionD(768)
                self.Mixed_7b = InceptionE(1280)
                self.Mixed_7c = InceptionE(2048)
                self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
                self.dropout = nn.Dropout(0.5)
                self.fc = nn.Linear(2048, num_classes)

            def forward(self, x):
                x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(transform(x))))
                x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(self.maxpool1(x))))
                x = self.Mixed_6a(self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x))))
                x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(x))))
                x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))
                return self.fc(torch.flatten(self.dropout(self.avgpool(x)), 1))
        return Inception3()
    raise KeyError(name)
