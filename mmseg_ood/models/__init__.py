"""Model-side pieces: embedding capture, OOD scoring hooks, TTA merge, and
the training-time heads (IBE, SCrIBE) and losses (UOI, IoU, entropy
maximization)."""
from .embedding_capture import (EmbeddingCapture, class_weight_norms,
                                final_classifier, final_decode_head,
                                head_kind, unwrap_segmentor)
from .heads import IBEHead, ImplicitBackgroundHead, SCrIBEHead
from .losses import (EntropyMaximizationLoss, IoULoss, UOILoss,
                     expected_intersection_union)
from .ood_scoring import OODScoring, build_scorers
from .ood_segmentor import OODSegmentor, with_unknown_class
from .ood_tta import OODSegTTAModel

__all__ = [
    'EmbeddingCapture', 'class_weight_norms', 'final_classifier',
    'final_decode_head', 'head_kind',
    'unwrap_segmentor', 'OODScoring', 'build_scorers', 'OODSegTTAModel',
    'OODSegmentor', 'with_unknown_class',
    'IBEHead', 'ImplicitBackgroundHead', 'SCrIBEHead',
    'EntropyMaximizationLoss', 'IoULoss', 'UOILoss',
    'expected_intersection_union'
]
