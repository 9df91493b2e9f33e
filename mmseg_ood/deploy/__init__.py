"""Deployment: the inferencer that applies a threshold file to images, and
the ONNX export of a segmentor with its OOD score."""
from .inferencer import OODInferencer, OODInputError, OODInputNotFoundError
from .onnx_export import OODExportError, export_onnx

__all__ = [
    'OODInferencer', 'OODInputError', 'OODInputNotFoundError',
    'OODExportError', 'export_onnx'
]
