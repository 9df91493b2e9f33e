"""Optional packages: which extra installs each, and a named error when a
feature's extra is missing.

``pip install mmseg_ood`` installs the core: post-hoc scoring, training,
evaluation and the SMIYC formats. The rest comes with extras
(``setup.cfg``):

========================  ==============================================
extra                     what it enables
========================  ==============================================
``onnx``                  ``tools/export_onnx.py`` (onnx, onnxruntime,
                          onnxscript)
``mask2former``           MaskFormer / Mask2Former heads (mmdet)
``zoo``                   ConvNeXt / PoolFormer backbones (mmpretrain)
``coco``                  ``tools/prepare_coco_ood.py`` (pycocotools)
``tracking``              ``--vis-backend tensorboard`` / ``mlflow``
                          (tensorboard, mlflow-skinny)
``all``                   every extra above
========================  ==============================================

:func:`require_extra` imports a feature's packages, or raises
:class:`~mmseg_ood.errors.MissingExtraError` naming the extra to install;
:func:`check_config_extras` does the same for the model types a config
names, before the model is built.
"""
import importlib
from typing import Dict, Iterator, Optional, Sequence, Tuple

from mmseg_ood.errors import MissingExtraError

__all__ = ['EXTRAS', 'require_extra', 'check_config_extras',
           'extra_of_type']

#: extra -> the modules it installs (import names).
EXTRAS: Dict[str, Tuple[str, ...]] = {
    'onnx': ('onnx', 'onnxruntime'),
    'mask2former': ('mmdet', ),
    'zoo': ('mmpretrain', ),
    'coco': ('pycocotools', ),
    'tracking': ('tensorboard', 'mlflow'),
}

#: Registered model types (``type=`` in a config) built from an extra's
#: package: mmseg's mask-classification heads wrap mmdet's, and its
#: ConvNeXt / PoolFormer backbones are mmpretrain's.
_TYPES_OF_EXTRA = {
    'mask2former': ('MaskFormerHead', 'Mask2FormerHead'),
    'zoo': ('mmpretrain.ConvNeXt', 'mmpretrain.PoolFormer'),
}


def require_extra(extra: Optional[str], feature: str,
                  modules: Optional[Sequence[str]] = None) -> None:
    """Import every module of ``extra``, or raise a one-line error.

    Args:
        extra: A key of :data:`EXTRAS`, or ``None`` for packages no
            extra installs (the message then names ``pip install
            <module>``; ``modules`` must be given).
        feature: What needs it, for the message (``'ONNX export'``).
        modules: The modules to import (default: the extra's
            :data:`EXTRAS` entry), for a feature that needs only some, or
            one the entry leaves out (onnxscript, for the dynamo
            exporter only).

    Raises:
        MissingExtraError: a module of the extra cannot be imported; the
            message names the feature, the module and the install command.
    """
    for module in (EXTRAS[extra] if modules is None else modules):
        try:
            importlib.import_module(module)
        except ImportError as e:
            install = f'pip install {module}' if extra is None else \
                f"pip install 'mmseg_ood[{extra}]'"
            raise MissingExtraError(
                f'{feature} needs the optional package {module!r}, which is '
                f'not installed ({e}): {install}') from None


def extra_of_type(type_name) -> str:
    """The extra that registered model type ``type_name`` needs (``''``
    for a core type).

    Args:
        type_name: A ``type=`` value of a model config, e.g.
            ``'Mask2FormerHead'`` (-> ``'mask2former'``).
    """
    for extra, types in _TYPES_OF_EXTRA.items():
        if type_name in types:
            return extra
    return ''


def _types(cfg) -> Iterator[str]:
    """Every ``type`` value in a (nested) config."""
    if isinstance(cfg, dict):
        t = cfg.get('type')
        if isinstance(t, str):
            yield t
        for v in cfg.values():
            yield from _types(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            yield from _types(v)


def check_config_extras(model_cfg, what: str = 'the model') -> None:
    """Raise :class:`~mmseg_ood.errors.MissingExtraError` if ``model_cfg``
    names a type whose extra is not installed (e.g. ``Mask2FormerHead``
    without mmdet), before building it fails deep inside mmseg.

    Args:
        model_cfg: The model config (``cfg.model``), nested dicts and
            lists; every ``type`` value in it is checked.
        what: How the message names the config's owner.

    Raises:
        MissingExtraError: the first type whose extra is missing.
    """
    for t in _types(model_cfg):
        extra = extra_of_type(t)
        if extra:
            require_extra(extra, f'{what} ({t})')
