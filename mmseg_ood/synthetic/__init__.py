"""The embedded synthetic OOD benchmark (street and objects variants)."""
from ..labels import PROXY_OOD_INDEX
from .benchmark import (VARIANTS, SyntheticSpec, make_synthetic_benchmark,
                        render_id, render_image_ood, render_ood, render_proxy)
from .objects import OBJECTS_CLASSES, OBJECTS_PALETTE
from .outlier_images import render_outlier_proxy
from .street import STREET_CLASSES, STREET_PALETTE

__all__ = [
    'make_synthetic_benchmark', 'SyntheticSpec', 'render_id', 'render_ood',
    'render_image_ood', 'render_proxy', 'render_outlier_proxy',
    'PROXY_OOD_INDEX', 'VARIANTS', 'STREET_CLASSES', 'STREET_PALETTE',
    'OBJECTS_CLASSES', 'OBJECTS_PALETTE'
]
