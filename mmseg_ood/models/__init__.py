"""Model-side pieces: embedding capture, OOD scoring hooks, TTA merge."""
from .embedding_capture import (EmbeddingCapture, final_classifier,
                                final_decode_head, head_kind,
                                unwrap_segmentor)
from .ood_scoring import OODScoring, build_scorers
from .ood_tta import OODSegTTAModel

__all__ = [
    'EmbeddingCapture', 'final_classifier', 'final_decode_head', 'head_kind',
    'unwrap_segmentor', 'OODScoring', 'build_scorers', 'OODSegTTAModel'
]
