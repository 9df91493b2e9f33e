"""The mmseg metric: every scorer's OOD metrics in one evaluation."""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

from mmengine.dist import get_rank
from mmengine.logging import print_log
from mmseg.registry import METRICS

from ...errors import (InvalidTypeError, InvalidValueError, MissingFieldError,
                       OODNotice)
from ...formats.smiyc import SMIYCExport
from ...labels import IGNORE_INDEX
from ...reports.results import percent_ci, table_columns
from ...utils.arguments import strict_arguments
from ..accumulators.bootstrap import check_bootstrap
from ..accumulators.components import SIZE_PRESETS
from ..accumulators.per_image import PerImageOODMetrics
from ..accumulators.pixel import PixelOODAccumulator
from ..accumulators.score_transform import Float16RankTransform
from ..functional.inputs import sample_ood_labels
from .accumulating_metric import AccumulatingMetric
from .ood_metric_jobs import (BootstrapJob, ComponentThresholds,
                              DeferredComponentsJob, ExportJob,
                              FixedComponentsJob, LabelChecksJob, PerImageJob,
                              PixelMetricsJob, ScoredImage,
                              check_component_threshold, threshold_rule)

__all__ = ['OODMetric', 'format_table', 'threshold_rule']


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    """A text table, one row per scorer, metrics in percent; undefined
    values (NaN) print as ``n/a``; a bootstrap interval ``<metric>_ci``
    follows its metric in brackets.

    Args:
        results: ``{scorer name: {metric key: value}}``, as
            :class:`OODMetric` returns them without the prefix (``auroc``,
            ``fpr@95``, ``ap`` ... as fractions in ``[0, 1]``).

    Returns:
        str: The ``prettytable`` text; a column appears if any scorer has
        the metric.
    """
    from prettytable import PrettyTable
    cols = [(k, t) for k, t in table_columns(results.values())
            if any(k in r for r in results.values())]
    table = PrettyTable(['scorer'] + [t for _, t in cols])
    for name, r in results.items():
        table.add_row([name] + [percent_ci(r, k) for k, _ in cols])
    return table.get_string()


@METRICS.register_module()
@strict_arguments
class OODMetric(AccumulatingMetric):
    """Pixel and component OOD metrics for all scorers, distributed-safe.

    Reads ``data_sample['ood_scores'][name]`` (filled by
    :class:`~mmseg_ood.engine.OODScoringHook`) and the OOD label map
    ``data_sample[label_key]`` (0 ID, 1 OOD, 255 void); the labels are
    checked once per image for all scorers. Pixel metrics stream into one
    :class:`PixelOODAccumulator` per scorer (pages allocated where scores
    fall: usually under 1 MiB each, at most 32 MiB at ``bits=20``); under
    distributed evaluation the accumulators are gathered and merged on every
    rank, so the result equals a single process's (the repeats that
    distributed sampling pads the last batch with are left out).

    Component metrics (SMIYC sIoU, PPV, mean F1) need a threshold per
    scorer. ``component_threshold='best_f1'`` (the SMIYC benchmark's
    choice: an oracle, the best pixel-F1 threshold of the very dataset
    evaluated, here exact, predicting ``score >= t``), ``'smiyc'`` (the
    same oracle as the benchmark's code computes it, for its numbers: the
    best-F1 threshold of its binned pixel curve, ``score > t`` and its tau
    grid; see
    :class:`~mmseg_ood.evaluation.accumulators.components.SMIYCBinnedCurve`)
    and ``'tpr:<rate>'`` (the threshold at which the pixel TPR
    first reaches ``rate``) are known only after all pixels are seen: each
    rank then appends
    its score maps to a file (raw float32 and uint8 labels; a
    :class:`~mmseg_ood.formats.score_map_spill.ScoreMapSpill` under
    ``spill_dir``, removed after evaluation, on errors and at exit), not to
    memory, and reads them back once, labelling each image's ground-truth
    components once for all scorers. A float (e.g. a threshold chosen on
    another dataset, as a paper or a deployment must report) uses it for
    every scorer; a ``{scorer: rule}`` dict gives each its own (scorers not
    in it get no component metrics); ``None`` skips them. Each scorer's
    results hold the ``component_threshold`` used.

    ``per_image=True`` also reports, per scorer, AUROC / AP / FPR95 of each
    image averaged over the images that have both ID and OOD pixels
    (``per_image_auroc``, ``per_image_ap``, ``per_image_fpr95``), the number
    averaged (``per_image_images``) and skipped (``per_image_skipped``);
    see :mod:`~mmseg_ood.evaluation.accumulators.per_image`. Each image is
    counted into
    its own histogram, whose metrics are taken, and then merged into the
    pooled one (the pooled numbers are the same either way).

    ``bootstrap=dict(samples=R, seed=0, level=0.95, bins=1024)`` adds,
    per scorer, percentile bootstrap intervals of the pooled metrics with
    images resampled with replacement (``auroc_ci``, ``ap_ci``,
    ``fpr95_ci``: ``[low, high]``; the same resamples for every scorer):
    see :mod:`~mmseg_ood.evaluation.accumulators.bootstrap` for the definition,
    the
    bins and their error. Every scorer's maps are then spilled (as for a
    deferred threshold); the read-back that computes the component metrics
    counts each image into ``bins`` quantile bins of the pooled histogram
    (merged across ranks, so the same bins on every rank), and the
    per-image histograms (``8 bins`` bytes an image and scorer) are
    gathered from every rank, padding repeats left out as everywhere.
    :attr:`last_bootstrap` holds the settings, the number of images, the
    resamples without OOD or ID pixels and each scorer's binning error.

    Label values that the dataset's ``value_map`` does not list (recorded by
    :class:`~mmseg_ood.datasets.LoadOODAnnotations` as ``ood_unlisted``)
    are evaluated as void; they are added up over the dataset
    (:class:`~mmseg_ood.evaluation.accumulators.label_checks.UnlistedLabelValues`,
    :attr:`last_labels`) and reported in one warning naming the files,
    values and pixel counts.

    ``export=dict(out_dir=..., dataset_name=...)`` also writes the SMIYC
    submission files of the evaluated frames (:class:`~mmseg_ood.formats.
    smiyc.SMIYCExport`, the pipeline of :class:`~mmseg_ood.engine.
    SMIYCExportHook` too), each scorer's scores through a :class:`~mmseg_ood.
    evaluation.accumulators.score_transform.Float16RankTransform` fitted
    from its pooled histogram (the non-void pixels, merged across ranks):
    every map is spilled, and each rank writes its frames in the same
    read-back that computes the component metrics, so exporting costs no
    second copy of the maps (as mmseg's ``IoUMetric`` writes submission
    files).

    Each of these jobs is a unit of :mod:`~mmseg_ood.evaluation.metrics.
    ood_metric_jobs` owning its accumulators; the metric builds those its
    arguments ask for, feeds them each sample, and computes them in the
    order of their data (pixel metrics first, then the one read-back).

    Returned keys are ``<scorer>/<metric>`` (fractions in [0, 1]; NaN where
    undefined, shown as ``n/a`` in the logged table), and
    ``labels/voided_pixels``.

    Args:
        scorers: Names to evaluate; ``None`` = every name in ``ood_scores``.
        bits: Histogram resolution of :class:`PixelOODAccumulator`.
        ignore_index: Void label.
        tpr_points: TPR levels for ``fpr@tpr<p>``.
        component_threshold: ``'best_f1'``, ``'smiyc'``, ``'tpr:<rate>'``,
            a float, a dict of those by scorer, or ``None``.
        component_preset: ``'anomaly_track'`` (500 / 100 px) or
            ``'obstacle_track'`` (50 / 10 px) size filters.
        per_image: Also report the per-image averages.
        dataset_name: How the label warning names the dataset.
        export: ``None``, or the SMIYC export: ``out_dir``,
            ``dataset_name`` (the benchmark's, e.g. ``'AnomalyTrack-all'``),
            optional ``method_prefix`` (``''``) and ``compression``
            (``None``: uncompressed, or a gzip level).
        bootstrap: ``None`` (off), or ``dict(samples=R, seed=0,
            level=0.95, bins=1024)`` (see
            :func:`~mmseg_ood.evaluation.accumulators.bootstrap.check_bootstrap`).
        label_key: Data-sample field holding the OOD label map.
        spill_dir: Directory for the spilled score maps; ``None``: the
            system's temporary directory (the package's tools and
            :class:`~mmseg_ood.engine.OODScoringHook` set it to the work
            dir, where a killed run's spill is found and removed by the
            next run).
        collect_device / prefix: As in mmengine's ``BaseMetric``.

    Attributes:
        last_results: After ``evaluate``, scorer -> metric name -> value
            (the returned numbers, by scorer); ``None`` before.
        last_pixel: After ``evaluate``, scorer -> the merged
            :class:`PixelOODAccumulator` (for ROC / PR curves); ``None``
            before.
        last_thresholds: After ``evaluate``, scorer -> the rule of its
            component threshold (``'best_f1'``, ``'smiyc'``,
            ``'tpr:<rate>'`` or ``'fixed'``); ``None`` before.
        last_per_image: After ``evaluate`` with ``per_image``, the merged
            :class:`~mmseg_ood.evaluation.accumulators.per_image.PerImageOODMetrics`
            (its ``table()`` lists every image).
        last_labels: After ``evaluate``, the summary of unlisted label
            values (:meth:`UnlistedLabelValues.compute`).
        last_bootstrap: After ``evaluate`` with ``bootstrap``: its
            settings, ``images`` (resampled), ``undefined`` (resamples
            without OOD or ID pixels, left out) and ``bin_error`` (scorer
            -> metric -> binned full-sample value minus the reported one);
            ``None`` otherwise.

    References:
        Chan et al., "SegmentMeIfYouCan: A Benchmark for Anomaly
        Segmentation", NeurIPS Datasets and Benchmarks 2021 (pixel and
        component metrics).
    """
    default_prefix = 'ood'

    def __init__(self,
                 scorers: Optional[Sequence[str]] = None,
                 bits: int = 20,
                 ignore_index: int = IGNORE_INDEX,
                 tpr_points: Sequence[float] = (0.95, ),
                 component_threshold: Union[str, float, dict,
                                            None] = 'best_f1',
                 component_preset: str = 'anomaly_track',
                 per_image: bool = False,
                 dataset_name: Optional[str] = None,
                 export: Optional[dict] = None,
                 bootstrap: Optional[dict] = None,
                 label_key: str = 'gt_sem_seg',
                 spill_dir: Optional[str] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if component_preset not in SIZE_PRESETS:
            raise InvalidValueError(f'`component_preset` must be one of '
                                    f'{sorted(SIZE_PRESETS)}, got '
                                    f'{component_preset!r}')
        check_component_threshold(component_threshold)
        if scorers is not None and (isinstance(scorers, str) or not all(
                isinstance(n, str) for n in scorers)):
            raise InvalidTypeError(
                '`scorers` must be a list of scorer names or '
                f'None, got {scorers!r}')
        if not isinstance(label_key, str):
            raise InvalidTypeError(
                f'`label_key` must be a str, got {label_key!r}')
        if not isinstance(per_image, bool):
            raise InvalidTypeError(
                f'`per_image` must be a bool, got {per_image!r}')
        PixelOODAccumulator(bits=bits, tpr_points=tpr_points)  # validates
        smiyc_export = SMIYCExport.from_options(export)
        self.bootstrap = check_bootstrap(bootstrap)
        self.scorers = list(scorers) if scorers is not None else None
        self.bits = bits
        self.ignore_index = ignore_index
        thresholds = ComponentThresholds(component_threshold,
                                         component_preset, ignore_index)
        # the rates of 'tpr:<rate>' thresholds are read off the pixel curve
        self.tpr_points = tuple(tpr_points) + tuple(
            r for r in thresholds.tpr_rates() if r not in tpr_points)
        self.per_image = per_image
        self.dataset_name = dataset_name
        self.export = None if smiyc_export is None else smiyc_export.options()
        #: After ``evaluate`` with ``export``: scorer -> its transform.
        self.last_transforms: Dict[str, Float16RankTransform] = {}
        self.component_threshold = component_threshold
        self.component_preset = component_preset
        self.label_key = label_key
        self.spill_dir = spill_dir
        self.last_results: Optional[Dict[str, Dict[str, float]]] = None
        self.last_pixel: Optional[Dict[str, PixelOODAccumulator]] = None
        self.last_thresholds: Optional[Dict[str, str]] = None
        self.last_per_image: Optional[PerImageOODMetrics] = None
        self.last_labels: Optional[dict] = None
        self.last_bootstrap: Optional[dict] = None
        # the jobs (ood_metric_jobs), those the arguments ask for
        self._thresholds = thresholds
        self._labels = LabelChecksJob(dataset_name)
        self._pixel = PixelMetricsJob(bits, ignore_index, self.tpr_points)
        self._per_image = PerImageJob(self._pixel) if per_image else None
        self._fixed = FixedComponentsJob(thresholds) \
            if thresholds.any_fixed() else None
        self._deferred = DeferredComponentsJob(thresholds) \
            if thresholds.any_deferred() else None
        self._bootstrap = None if self.bootstrap is None else \
            BootstrapJob(self.bootstrap)
        self._export = None if smiyc_export is None else \
            ExportJob(smiyc_export)
        # the jobs that read the spilled maps back, in one pass
        self._readers = [j for j in (self._deferred, self._bootstrap,
                                     self._export) if j is not None]
        self._checks = [] if self._export is None else [self._export.check]
        self.reset()

    # mmengine interface --------------------------------------------------
    def process_sample(self, sample: dict) -> None:
        if 'ood_scores' not in sample:
            raise MissingFieldError(
                'OODMetric: data sample has no `ood_scores`; add '
                "custom_hooks=[dict(type='OODScoringHook', "
                "scorers=[...])] to the config")
        labels = sample_ood_labels(
            sample, self.label_key, 'OODMetric',
            '; is LoadAnnotations in the test pipeline?')
        scores = sample['ood_scores']
        names = self.scorers if self.scorers is not None else list(scores)
        missing = [n for n in names if n not in scores]
        if missing:
            raise MissingFieldError(f'OODMetric: scorers {missing} are not in '
                                    f'ood_scores (have {sorted(scores)})')
        self._labels.process(sample, self.accumulator)
        image = ScoredImage.read(labels, scores, names,
                                 sample.get('img_path'), self.ignore_index,
                                 self._checks)
        own = None if self._per_image is None else \
            self._per_image.process(image, self.accumulator)
        self._pixel.process(image, self.accumulator, own)
        if self._deferred is not None:
            self._deferred.process(image, self.accumulator)
        if self._fixed is not None:
            self._fixed.process(image, self.accumulator)
        maps = OrderedDict((n, m) for n, m in image.maps.items()
                           if any(j.needs_map(n) for j in self._readers))
        if maps:
            self.spill(image.labels, maps, tag=image.image)
        # nothing goes to self.results: the accumulators are the state

    def compute_accumulated(self, local) -> dict:
        """Merge across ranks and compute; the same result on every rank."""
        per_image = None if self._per_image is None else \
            self._per_image.merge(local)
        labels = self._labels.merge(local)
        # 1. pixel metrics: every rank's (sparse) histograms; the other
        #    jobs' thresholds, bins and transforms come from them
        pixel = self._pixel.merge(local)
        if not pixel:
            warnings.warn('OODMetric got no samples', OODNotice)
            return {}
        results = OrderedDict((n, m.compute()) for n, m in pixel.items())
        rules = OrderedDict((n, self._thresholds.describe(n)) for n in pixel)
        # 2. one pass over this rank's spilled maps: component metrics at
        #    thresholds read off the pixel curves, the bootstrap's
        #    per-image histograms, the export's files
        if self._deferred is not None:
            self._deferred.start(results, local)
        self.last_transforms = {} if self._export is None else \
            self._export.start(pixel)
        if self._bootstrap is not None:
            self._bootstrap.start(pixel)
        for image, spilled_labels, maps in self.spilled():
            for job in self._readers:
                job.read(image, spilled_labels, maps)
        # 3. merge: components (read back, and streamed at fixed
        #    thresholds), bootstrap intervals, per-image averages
        components = OrderedDict()
        if self._deferred is not None:
            components.update(self._deferred.finish())
        if self._fixed is not None:
            components.update(self._fixed.merge(local))
        for n, acc in components.items():
            results[n].update(acc.compute())
        bootstrap = None if self._bootstrap is None else \
            self._bootstrap.finish(results)
        if per_image is not None:
            self._per_image.finish(per_image, results)
        if get_rank() == 0:
            print_log('\n' + format_table(results), logger='current')
            self._labels.warn(labels)
        self.last_results, self.last_pixel = results, pixel
        self.last_labels, self.last_bootstrap = labels, bootstrap
        self.last_thresholds, self.last_per_image = rules, per_image
        flat = {f'{n}/{k}': v for n, r in results.items()
                for k, v in r.items()}
        flat['labels/voided_pixels'] = labels['voided_pixels']
        return flat
