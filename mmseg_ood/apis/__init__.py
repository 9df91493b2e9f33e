"""High-level entry points used by the tools and by users.

:class:`EvaluationSession` is the evaluation-pass mechanism every OOD tool
builds on; :func:`ood_test`, :func:`fit_sml` and the later tools are
orchestrations of its passes.
"""
from .analyze_representation import analyze_representation
from .calibrate import calibrate_ood
from .dataset_presets import (DatasetPreset, available_dataset_presets,
                              load_dataset_preset)
from .evaluation_pass import EvaluationSession, PassResult
from .meta_classify import meta_classify
from .ood_infer import ood_infer
from .ood_inferencer import (OODInferencer, OODInputError,
                             OODInputNotFoundError)
from .onnx_export import OODExportError, export_onnx
from .ood_test import DEFAULT_SCORERS, ood_test
from .rerank_proposals import rerank_proposals
from .score import init_model, score_image
from .sml import fit_sml, sml_scorer
from .test import test
from .train import train

__all__ = [
    'train', 'test', 'init_model', 'score_image', 'ood_test',
    'OODInferencer', 'OODInputError', 'OODInputNotFoundError', 'ood_infer',
    'DEFAULT_SCORERS', 'EvaluationSession', 'PassResult', 'DatasetPreset',
    'available_dataset_presets', 'load_dataset_preset', 'fit_sml',
    'sml_scorer', 'meta_classify', 'analyze_representation',
    'calibrate_ood', 'export_onnx', 'OODExportError', 'rerank_proposals'
]
