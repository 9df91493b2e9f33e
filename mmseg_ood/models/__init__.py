"""Model-side pieces, each in its own module:

- :mod:`~mmseg_ood.models.introspection`: find a segmentor's final head and
  classifier, unwrap wrappers;
- :mod:`~mmseg_ood.models.captures`: forward hooks that capture the
  embeddings (or per-query outputs) scorers read;
- :mod:`~mmseg_ood.models.ood_scoring`: scorers attached to a segmentor;
- :mod:`~mmseg_ood.models.segmentors`: the thresholded OOD segmentor and
  the OOD-aware TTA model;
- :mod:`~mmseg_ood.models.heads` and :mod:`~mmseg_ood.models.losses`: the
  training-time heads (IBE, SCrIBE) and losses (UOI, IoU, entropy
  maximization).
"""
from .captures import EmbeddingCapture, QueryCapture
from .heads import IBEHead, ImplicitBackgroundHead, SCrIBEHead
from .introspection import (class_weight_norms, final_classifier,
                            final_decode_head, head_kind, unwrap_segmentor)
from .losses import (EntropyMaximizationLoss, IoULoss, UOILoss,
                     expected_intersection_union)
from .ood_scoring import OODScoring, build_scorers
from .segmentors import OODSegmentor, OODSegTTAModel, with_unknown_class

__all__ = [
    'EmbeddingCapture', 'QueryCapture', 'class_weight_norms',
    'final_classifier', 'final_decode_head', 'head_kind',
    'unwrap_segmentor', 'OODScoring', 'build_scorers', 'OODSegTTAModel',
    'OODSegmentor', 'with_unknown_class', 'IBEHead',
    'ImplicitBackgroundHead', 'SCrIBEHead', 'EntropyMaximizationLoss',
    'IoULoss', 'UOILoss', 'expected_intersection_union'
]
