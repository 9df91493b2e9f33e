"""The entry points users call, one per task: each tool under ``tools/``
parses arguments and calls one of these.

They orchestrate passes of the :class:`~mmseg_ood.engine.EvaluationSession`
and write reports; the mechanisms themselves live in the lower packages
(see ``docs/en/architecture.md``).
"""
from ..deploy import (OODExportError, OODInferencer, OODInputError,
                      OODInputNotFoundError, export_onnx)
from ..deprecation import package_getattr
from ..models.inference import init_model, score_image
from .analyze_representation import analyze_representation
from .calibrate import calibrate_ood
from .meta_classify import meta_classify
from .ood_infer import ood_infer
from .ood_test import DEFAULT_SCORERS, ood_test
from .ood_test_options import OODTestOptions
from .rerank_proposals import rerank_proposals
from .sml import fit_sml, sml_scorer
from .test import test
from .train import train

__getattr__ = package_getattr(__name__)  # names that moved out of apis

__all__ = [
    'train', 'test', 'init_model', 'score_image', 'ood_test',
    'OODTestOptions',
    'OODInferencer', 'OODInputError', 'OODInputNotFoundError', 'ood_infer',
    'DEFAULT_SCORERS', 'fit_sml',
    'sml_scorer', 'meta_classify', 'analyze_representation',
    'calibrate_ood', 'export_onnx', 'OODExportError', 'rerank_proposals'
]
