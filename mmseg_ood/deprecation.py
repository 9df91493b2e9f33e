"""Old import paths, kept working for one minor release.

The layout of 0.2 moved modules into packages by concern (see
``docs/en/architecture.md``) and renamed a few public names so that each
says what it is. Every old path still imports: a module that moved is
served by a stand-in whose attributes forward to the new modules, and a
renamed name forwards to its new name; each use emits a
:class:`DeprecationWarning` naming the new path. The old paths go in
:data:`REMOVED_IN`.

This module is the single table of those moves (the changelog lists it);
it imports nothing of the package, so any module may install it.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from typing import Callable, Dict, Tuple

#: The release that removes the old paths.
REMOVED_IN = '0.3'

#: Old module -> the new module(s) that hold its names, in lookup order.
#:
#: :meta hide-value:
MOVED_MODULES: Dict[str, Tuple[str, ...]] = {
    'mmseg_ood.calibration_file':
        ('mmseg_ood.formats.threshold_file',),
    'mmseg_ood.synthetic.outlier_proxy':
        ('mmseg_ood.synthetic.outlier_images',),
    'mmseg_ood.evaluation.inputs':
        ('mmseg_ood.evaluation.functional.inputs',),
    'mmseg_ood.evaluation.pixel_metrics':
        ('mmseg_ood.evaluation.functional.pixel_metrics',),
    'mmseg_ood.evaluation.curves':
        ('mmseg_ood.evaluation.functional.roc_pr',),
    'mmseg_ood.evaluation.label_checks':
        ('mmseg_ood.evaluation.accumulators.label_checks',),
    'mmseg_ood.evaluation.proposal_reranking':
        ('mmseg_ood.evaluation.functional.proposal_reranking',),
    'mmseg_ood.evaluation.components':
        ('mmseg_ood.evaluation.accumulators.components',),
    'mmseg_ood.evaluation.accumulator':
        ('mmseg_ood.evaluation.accumulators.base',),
    'mmseg_ood.evaluation.streaming':
        ('mmseg_ood.evaluation.accumulators.pixel',
         'mmseg_ood.evaluation.functional.float_keys'),
    'mmseg_ood.evaluation.bootstrap':
        ('mmseg_ood.evaluation.accumulators.bootstrap',),
    'mmseg_ood.evaluation.per_image':
        ('mmseg_ood.evaluation.accumulators.per_image',),
    'mmseg_ood.evaluation.score_distribution':
        ('mmseg_ood.evaluation.accumulators.score_distribution',),
    'mmseg_ood.evaluation.calibration':
        ('mmseg_ood.evaluation.accumulators.ece',
         'mmseg_ood.evaluation.metrics.ece'),
    'mmseg_ood.evaluation.background_iou':
        ('mmseg_ood.evaluation.accumulators.background_iou',
         'mmseg_ood.evaluation.metrics.background_iou'),
    'mmseg_ood.evaluation.open_set_iou':
        ('mmseg_ood.evaluation.accumulators.open_set_iou',
         'mmseg_ood.evaluation.metrics.open_set_iou'),
    'mmseg_ood.evaluation.representation':
        ('mmseg_ood.evaluation.accumulators.representation',
         'mmseg_ood.evaluation.metrics.representation'),
    'mmseg_ood.evaluation.accumulating_metric':
        ('mmseg_ood.evaluation.metrics.accumulating_metric',),
    'mmseg_ood.evaluation.ood_metric':
        ('mmseg_ood.evaluation.metrics.ood_metric',),
    'mmseg_ood.evaluation.operating_point':
        ('mmseg_ood.evaluation.metrics.operating_point',),
    'mmseg_ood.evaluation.per_class_iou':
        ('mmseg_ood.evaluation.metrics.per_class_iou',),
    'mmseg_ood.evaluation.segment_metric':
        ('mmseg_ood.evaluation.metrics.segment_metric',),
    'mmseg_ood.evaluation.sampler_padding':
        ('mmseg_ood.evaluation.metrics.sampler_padding',),
    'mmseg_ood.evaluation.meta_classifier':
        ('mmseg_ood.meta.classifier',),
    'mmseg_ood.evaluation.ood_segments':
        ('mmseg_ood.meta.segments',),
    'mmseg_ood.evaluation.smiyc_files':
        ('mmseg_ood.formats.smiyc',),
    'mmseg_ood.evaluation.score_transform':
        ('mmseg_ood.evaluation.accumulators.score_transform',),
    'mmseg_ood.evaluation.score_map_spill':
        ('mmseg_ood.formats.score_map_spill',),
    'mmseg_ood.evaluation.report':
        ('mmseg_ood.reports.results',
         'mmseg_ood.utils.files'),
    'mmseg_ood.evaluation.figures':
        ('mmseg_ood.reports.figures',),
    'mmseg_ood.evaluation.robustness_report':
        ('mmseg_ood.reports.robustness',),
    'mmseg_ood.evaluation.segment_report':
        ('mmseg_ood.reports.segments',),
    'mmseg_ood.evaluation.seed_spread':
        ('mmseg_ood.reports.seed_spread',),
    'mmseg_ood.evaluation.training_curves':
        ('mmseg_ood.reports.training_log',),
    'mmseg_ood.models.embedding_capture':
        ('mmseg_ood.models.introspection',
         'mmseg_ood.models.captures'),
    'mmseg_ood.models.ood_segmentor':
        ('mmseg_ood.models.segmentors.ood_segmentor',),
    'mmseg_ood.models.ood_tta':
        ('mmseg_ood.models.segmentors.ood_tta',),
    'mmseg_ood.apis.evaluation_pass':
        ('mmseg_ood.engine.evaluation_session',),
    'mmseg_ood.apis.tuning':
        ('mmseg_ood.engine.tuning',),
    'mmseg_ood.apis.dataset_presets':
        ('mmseg_ood.datasets.presets',),
    'mmseg_ood.apis.ood_inferencer':
        ('mmseg_ood.deploy.inferencer',),
    'mmseg_ood.apis.onnx_export':
        ('mmseg_ood.deploy.onnx_export',),
    'mmseg_ood.apis.background_iou':
        ('mmseg_ood.engine.background_iou_pass',),
    'mmseg_ood.engine.finite_logits_hook':
        ('mmseg_ood.engine.hooks.finite_logits_hook',),
    'mmseg_ood.engine.meta_classifier_hook':
        ('mmseg_ood.engine.hooks.meta_classifier_hook',),
    'mmseg_ood.engine.ood_scoring_hook':
        ('mmseg_ood.engine.hooks.ood_scoring_hook',),
    'mmseg_ood.engine.ood_visualization_hook':
        ('mmseg_ood.engine.hooks.ood_visualization_hook',),
    'mmseg_ood.engine.prediction_capture_hook':
        ('mmseg_ood.engine.hooks.prediction_capture_hook',),
    'mmseg_ood.engine.progress_hook':
        ('mmseg_ood.engine.hooks.progress_hook',),
    'mmseg_ood.engine.rank_zero_logger_hook':
        ('mmseg_ood.engine.hooks.rank_zero_logger_hook',),
    'mmseg_ood.engine.smiyc_export_hook':
        ('mmseg_ood.engine.hooks.smiyc_export_hook',),
    'mmseg_ood.datasets.outlier_proxy':
        ('mmseg_ood.datasets.outlier_datasets',),
    'mmseg_ood.tools.compare_results':
        ('mmseg_ood.tools.analysis.compare_results',),
    'mmseg_ood.tools.training_curves':
        ('mmseg_ood.tools.analysis.training_curves',),
    'mmseg_ood.tools.seed_summary':
        ('mmseg_ood.tools.analysis.seed_summary',),
    'mmseg_ood.tools.make_synthetic':
        ('mmseg_ood.tools.dataset_converters.make_synthetic',),
    'mmseg_ood.tools.prepare_coco_ood':
        ('mmseg_ood.tools.dataset_converters.prepare_coco_ood',),
}

#: Renamed public names, as
#: ``(old module, old name) -> 'new.module:new_name'``.
#:
#: :meta hide-value:
RENAMED_NAMES: Dict[Tuple[str, str], str] = {
    ('mmseg_ood.evaluation.streaming', 'StreamingOODMetric'):
        'mmseg_ood.evaluation.accumulators.pixel:PixelOODAccumulator',
    ('mmseg_ood.evaluation.calibration', 'CalibrationAccumulator'):
        'mmseg_ood.evaluation.accumulators.ece:ECEAccumulator',
    ('mmseg_ood.evaluation.calibration', 'CalibrationMetric'):
        'mmseg_ood.evaluation.metrics.ece:ECEMetric',
    ('mmseg_ood.evaluation.robustness_report', 'table1_markdown'):
        'mmseg_ood.reports.robustness:miou_by_corruption_markdown',
    ('mmseg_ood.evaluation.robustness_report', 'table2_markdown'):
        'mmseg_ood.reports.robustness:miou_by_severity_markdown',
    ('mmseg_ood.evaluation.segment_report', 'table2_markdown'):
        'mmseg_ood.reports.segments:detection_errors_markdown',
    ('mmseg_ood.evaluation.segment_report', 'table3_markdown'):
        'mmseg_ood.reports.segments:false_positive_detection_markdown',
    ('mmseg_ood.evaluation.training_curves', 'curves_markdown'):
        'mmseg_ood.reports.training_log:training_log_markdown',
    ('mmseg_ood.evaluation.training_curves', 'plot_curves'):
        'mmseg_ood.reports.training_log:plot_training_log',
    ('mmseg_ood.evaluation.report', 'plot_curves'):
        'mmseg_ood.reports.results:plot_roc_pr',
    # names that left a module that still exists
    ('mmseg_ood.apis.train', 'build_runner'):
        'mmseg_ood.engine.runner:build_runner',
    ('mmseg_ood.apis.train', 'unique_experiment_name'):
        'mmseg_ood.engine.runner:unique_experiment_name',
    ('mmseg_ood.apis.train', 'init_cpu_distributed'):
        'mmseg_ood.engine.runner:init_cpu_distributed',
    ('mmseg_ood.apis.train', 'enable_amp'):
        'mmseg_ood.engine.runner:enable_amp',
    ('mmseg_ood.apis.test', 'enable_tta'):
        'mmseg_ood.engine.runner:enable_tta',
    ('mmseg_ood.apis.test', 'enable_visualization'):
        'mmseg_ood.engine.runner:enable_visualization',
    ('mmseg_ood.apis.robustness_test', 'background_index'):
        'mmseg_ood.engine.background_iou_pass:background_index',
    ('mmseg_ood.apis.analyze_representation', 'LEVELS'):
        'mmseg_ood.reports.representation:LEVELS',
    ('mmseg_ood.apis.analyze_representation', 'markdown_table'):
        'mmseg_ood.reports.representation:markdown_table',
    ('mmseg_ood.apis.analyze_representation', 'write_representation'):
        'mmseg_ood.reports.representation:write_representation',
    ('mmseg_ood.apis.analyze_representation', 'plot_explained_variance'):
        'mmseg_ood.reports.representation:plot_explained_variance',
    ('mmseg_ood.apis.analyze_representation', 'plot_autocorrelation'):
        'mmseg_ood.reports.representation:plot_autocorrelation',
    # names of packages that now live elsewhere
    ('mmseg_ood.evaluation', 'StreamingOODMetric'):
        'mmseg_ood.evaluation.accumulators.pixel:PixelOODAccumulator',
    ('mmseg_ood.evaluation', 'CalibrationAccumulator'):
        'mmseg_ood.evaluation.accumulators.ece:ECEAccumulator',
    ('mmseg_ood.evaluation', 'CalibrationMetric'):
        'mmseg_ood.evaluation.metrics.ece:ECEMetric',
    ('mmseg_ood.evaluation', 'MetaClassifier'):
        'mmseg_ood.meta:MetaClassifier',
    ('mmseg_ood.evaluation', 'cross_validated_tp_probability'):
        'mmseg_ood.meta:cross_validated_tp_probability',
    ('mmseg_ood.evaluation', 'load_meta_classifiers'):
        'mmseg_ood.meta:load_meta_classifiers',
    ('mmseg_ood.evaluation', 'save_meta_classifiers'):
        'mmseg_ood.meta:save_meta_classifiers',
    ('mmseg_ood.evaluation', 'feature_names'):
        'mmseg_ood.meta:feature_names',
    ('mmseg_ood.evaluation', 'image_segments'):
        'mmseg_ood.meta:image_segments',
    ('mmseg_ood.apis', 'DatasetPreset'):
        'mmseg_ood.datasets:DatasetPreset',
    ('mmseg_ood.apis', 'available_dataset_presets'):
        'mmseg_ood.datasets:available_dataset_presets',
    ('mmseg_ood.apis', 'load_dataset_preset'):
        'mmseg_ood.datasets:load_dataset_preset',
    ('mmseg_ood.apis', 'EvaluationSession'):
        'mmseg_ood.engine:EvaluationSession',
    ('mmseg_ood.apis', 'PassResult'):
        'mmseg_ood.engine:PassResult',
}


def _warn(old: str, new: str, stacklevel: int) -> None:
    warnings.warn(
        f'{old} is deprecated and will be removed in mmseg_ood '
        f'{REMOVED_IN}; use {new}', DeprecationWarning,
        stacklevel=stacklevel + 1)


def _resolve(target: str):
    module, _, name = target.partition(':')
    return getattr(importlib.import_module(module), name)


def _renamed(module: str, name: str, stacklevel: int):
    """The object an old (module, name) pair stands for, with a warning,
    or ``None`` when the pair was not renamed."""
    target = RENAMED_NAMES.get((module, name))
    if target is None:
        return None
    _warn(f'{module}.{name}', target.replace(':', '.'), stacklevel + 1)
    return _resolve(target)


def package_getattr(package: str) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that serves its renamed and
    moved-out names (PEP 562), each with a warning.

    Use: ``__getattr__ = package_getattr(__name__)`` at a module's top
    level.

    Args:
        package: The full name of the module that installs the hook, e.g.
            ``'mmseg_ood.apis.train'``; its entries in
            :data:`RENAMED_NAMES` are served.

    Returns:
        callable: ``__getattr__(name)``, which returns the new object (with
        a ``DeprecationWarning``) or raises ``AttributeError``.
    """

    def __getattr__(name: str):
        if (package, name) in RENAMED_NAMES:
            return _renamed(package, name, 2)
        raise AttributeError(
            f'module {package!r} has no attribute {name!r}')

    return __getattr__


class _MovedModule:
    """The attributes of a stand-in module: forward to the new modules."""

    def __init__(self, old: str, new: Tuple[str, ...]):
        self.old, self.new = old, new

    def __call__(self, name: str):
        if name.startswith('__'):
            raise AttributeError(name)
        if (self.old, name) in RENAMED_NAMES:
            return _renamed(self.old, name, 2)
        for new in self.new:
            module = importlib.import_module(new)
            if hasattr(module, name):
                _warn(f'{self.old}.{name}', f'{new}.{name}', 2)
                return getattr(module, name)
        raise AttributeError(
            f'{self.old} (moved to {", ".join(self.new)}) has no '
            f'attribute {name!r}')


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the old module paths of :data:`MOVED_MODULES`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED_MODULES:
            # the new module's file as origin: runpy makes it sys.argv[0]
            new = importlib.util.find_spec(MOVED_MODULES[fullname][0])
            return importlib.util.spec_from_loader(
                fullname, self, origin=new.origin if new else None)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def get_code(self, fullname: str):
        """The new module's code, so that ``python -m <old path>`` still
        runs a moved tool (runpy asks the loader for it)."""
        new = MOVED_MODULES[fullname]
        _warn(fullname, new[0], 2)
        spec = importlib.util.find_spec(new[0])
        return spec.loader.get_code(new[0])

    def exec_module(self, module) -> None:
        new = MOVED_MODULES[module.__name__]
        module.__doc__ = (f'Deprecated: moved to {", ".join(new)}.')
        module.__getattr__ = _MovedModule(module.__name__, new)
        module.__dir__ = lambda: sorted(
            {n for m in new for n in dir(importlib.import_module(m))})


def install() -> None:
    """Put :class:`MovedModuleFinder` on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())


install()  # importing mmseg_ood imports this module first
