"""Let mmpretrain's backbones build where torchvision cannot be installed.

mmseg builds ConvNeXt and PoolFormer backbones from mmpretrain
(``type='mmpretrain.ConvNeXt'``), and mmengine imports ``mmpretrain.models``
for them. mmpretrain 1.2.0 imports ``torchvision.ops.boxes`` at module level
in exactly two modules that ``mmpretrain.models`` pulls in, both for its
multimodal visual-grounding models and metric, never for a backbone:
``mmpretrain.models.utils.box_utils`` and
``mmpretrain.evaluation.metrics.visual_grounding_eval``. Some torch builds
have no matching torchvision at all (the CPU build of torch 2.13 on this
project's machines: the index's torchvision wheels load only against the
CUDA build), so without torchvision ``import mmpretrain.models`` fails and
no mmpretrain backbone builds.

When torchvision is not installed or does not import (and only then:
a CUDA build of torchvision next to a CPU torch fails at import with
"operator torchvision::nms does not exist"), the package puts
placeholders for those two modules into ``sys.modules`` before mmpretrain
imports them. Every name they export is a function that raises
``ModuleNotFoundError`` naming torchvision and the function, so nothing
that needs torchvision can run without it; torchvision itself is not faked,
and every other mmpretrain module is the real one. With torchvision
importing, this module does nothing (but that import: mmpretrain would
make it anyway).
"""
from __future__ import annotations

import importlib.util
import sys
import types

#: The mmpretrain modules that import torchvision, and the names they export.
TORCHVISION_MODULES = {
    'mmpretrain.models.utils.box_utils':
    ('box_cxcywh_to_xyxy', 'box_xyxy_to_cxcywh', 'box_iou',
     'generalized_box_iou'),
    'mmpretrain.evaluation.metrics.visual_grounding_eval':
    ('aligned_box_iou', 'VisualGroundingMetric'),
}


def _needs_torchvision(module: str, name: str):

    def unavailable(*args, **kwargs):
        raise ModuleNotFoundError(
            f'{module}.{name} needs torchvision, which is not installed '
            '(mmseg_ood let mmpretrain import without it for its '
            'backbones; install a torchvision matching your torch to use '
            'this)', name='torchvision')

    unavailable.__name__ = unavailable.__qualname__ = name
    return unavailable


def torchvision_boxes_import() -> bool:
    """Whether ``torchvision.ops.boxes``, what mmpretrain imports, imports."""
    if importlib.util.find_spec('torchvision') is None:
        return False
    try:
        importlib.import_module('torchvision.ops.boxes')
    except Exception:  # a torchvision built for another torch
        return False
    return True


def allow_mmpretrain_without_torchvision() -> bool:
    """Install the placeholders if mmpretrain is installed and torchvision
    is missing or does not import; return whether they are in place.

    A module mmpretrain has already imported is left as it is.
    """
    if importlib.util.find_spec('mmpretrain') is None or \
            torchvision_boxes_import():
        return False
    for module, names in TORCHVISION_MODULES.items():
        if module in sys.modules:
            continue
        placeholder = types.ModuleType(
            module, f'Placeholder for {module} (needs torchvision, not '
            'installed); see mmseg_ood.utils.mmpretrain_without_torchvision')
        for name in names:
            setattr(placeholder, name, _needs_torchvision(module, name))
        sys.modules[module] = placeholder
    return True


#: Whether the placeholders were installed when the package was imported.
INSTALLED = allow_mmpretrain_without_torchvision()
