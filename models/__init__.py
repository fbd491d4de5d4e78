"""fastconv's model zoo: NIN, AlexNet, the Inception family and the CIFAR-10 tutorial network.

    >>> import models
    >>> models.list_models()
    ['alexnet', 'alexnet_cifar', 'alexnet_owt', 'bn_inception', 'bn_inception_cifar',
     'cifar10_tutorial', 'googlenet', 'googlenet_cifar', 'inception_small',
     'inception_v3', 'nin_cifar']
    >>> net = models.get_model("googlenet", num_classes=10, aux_logits=False)
    >>> models.summary(net, models.get_model_spec("googlenet").input_shape)

Every builder takes ``num_classes`` and returns a freshly initialised model in
training mode. ``googlenet`` and ``inception_v3`` (and ``googlenet_cifar`` with
``aux_logits=True``) return a named tuple of main and auxiliary logits in training
mode and the main logits alone in eval mode; :func:`main_logits` unwraps either.
"""

from . import alexnet as _alexnet  # noqa: F401  (imports register the models)
from . import bn_inception as _bn_inception  # noqa: F401
from . import cifar_tutorial as _cifar_tutorial  # noqa: F401
from . import googlenet as _googlenet  # noqa: F401
from . import inception_small as _inception_small  # noqa: F401
from . import inception_v3 as _inception_v3  # noqa: F401
from . import nin as _nin  # noqa: F401
from .alexnet import AlexNet
from .bn_inception import BNInception
from .cifar_tutorial import Cifar10TutorialNet
from .googlenet import GoogLeNet
from .inception_blocks import GoogLeNetOutputs, InceptionOutputs, main_logits
from .inception_small import InceptionSmall
from .inception_v3 import Inception3
from .nin import NIN
from .registry import (
    ModelSpec,
    get_model,
    get_model_spec,
    list_models,
    model_options,
    register_model,
)
from .summary import LayerSummary, ModelSummary, summary

__all__ = [
    "NIN",
    "AlexNet",
    "BNInception",
    "Cifar10TutorialNet",
    "GoogLeNet",
    "GoogLeNetOutputs",
    "Inception3",
    "InceptionOutputs",
    "InceptionSmall",
    "LayerSummary",
    "ModelSpec",
    "ModelSummary",
    "get_model",
    "get_model_spec",
    "list_models",
    "main_logits",
    "model_options",
    "register_model",
    "summary",
]
