"""mmseg_ood: out-of-distribution scoring, training and evaluation for
MMSegmentation.

Importing the package registers its modules into mmseg's registries and does
nothing else; ``custom_imports = dict(imports=['mmseg_ood'])`` in a config is
all a user adds. (Where torchvision is not installed, it also lets
mmpretrain's backbones import: see
:mod:`mmseg_ood.utils.mmpretrain_without_torchvision`.)
"""
# first: old import paths keep working (mmseg_ood.deprecation), and
# mmpretrain imports without torchvision, before anything imports it
from . import deprecation  # noqa: F401,I001  (installs the old paths)
from .utils import mmpretrain_without_torchvision  # noqa: F401
from . import datasets  # noqa: F401  (registers datasets)
from . import engine  # noqa: F401  (registers hooks)
from . import evaluation  # noqa: F401  (registers metrics)
from . import models  # noqa: F401  (registers models)
from . import scorers  # noqa: F401  (fills OOD_SCORERS)
from .version import __version__

__all__ = ['__version__']
