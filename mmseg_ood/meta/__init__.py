"""Meta classification of predicted OOD segments (MetaSeg): per-segment
features and the classifier that tells false-positive segments from true
ones."""
from .classifier import (MetaClassifier, cross_validated_tp_probability,
                         load_meta_classifiers, save_meta_classifiers)
from .segments import feature_names, image_segments

__all__ = [
    'MetaClassifier', 'cross_validated_tp_probability',
    'load_meta_classifiers', 'save_meta_classifiers', 'feature_names',
    'image_segments'
]
