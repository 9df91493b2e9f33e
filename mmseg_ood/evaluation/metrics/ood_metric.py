"""The mmseg metric: every scorer's OOD metrics in one evaluation."""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dist import get_rank
from mmengine.logging import print_log

from mmseg.registry import METRICS
from ...formats.smiyc import (check_compression, fit_transforms, frame_file,
                              write_frame)
from ...labels import IGNORE_INDEX
from ...reports.results import percent_ci, table_columns
from ...utils.arguments import strict_arguments
from ..accumulators.base import merge_across_ranks
from ..accumulators.bootstrap import (BOOTSTRAP_KEYS, ImageHistograms,
                                      bootstrap_knots, check_bootstrap,
                                      image_bootstrap)
from ..accumulators.components import (SIZE_PRESETS, ComponentAccumulator,
                                       GroundTruthComponents)
from ..accumulators.label_checks import (UnlistedLabelValues,
                                         warn_unlisted_values)
from ..accumulators.per_image import PER_IMAGE_KEYS, PerImageOODMetrics
from ..accumulators.pixel import PixelOODAccumulator
from ..accumulators.score_transform import Float16RankTransform
from ..functional.inputs import VOID, check_finite, flat_ood_labels, to_numpy
from .accumulating_metric import AccumulatingMetric

#: Accumulator keys of the per-image metrics and the label checks.
_PER_IMAGE = ('per_image', '')
_LABELS = ('labels', '')


def _merged(local, key, factory):
    """The accumulator ``key`` of every rank, merged (``factory()`` where no
    rank has one)."""
    part = {'': local[key]} if key in local else {}
    return merge_across_ranks(part, lambda _: factory()).get('') or factory()


def threshold_rule(t) -> Optional[Tuple[str, float]]:
    """``('best_f1', nan)`` or ``('tpr', rate)`` for a threshold known only
    after the pass; ``None`` for a number or ``None``.

    Raises:
        ValueError: ``t`` is none of ``'best_f1'``, ``'tpr:<rate>'`` (rate
            in (0, 1]), a finite number or ``None``.
    """
    if t is None or (isinstance(t, (int, float)) and not isinstance(t, bool)
                     and np.isfinite(t)):
        return None
    if t == 'best_f1':
        return ('best_f1', float('nan'))
    if isinstance(t, str) and t.startswith('tpr:'):
        try:
            rate = float(t[4:])
        except ValueError:
            rate = float('nan')
        if 0.0 < rate <= 1.0:
            return ('tpr', rate)
    raise ValueError(
        "`component_threshold` must be 'best_f1', 'tpr:<rate>' (rate in "
        "(0, 1], e.g. 'tpr:0.95'), a finite number, None, or a dict "
        f'{{scorer: one of those}}, got {t!r}')


def _check_export(export: Optional[dict]) -> Optional[dict]:
    """Validate ``export`` (see :class:`OODMetric`); fill its defaults."""
    if export is None:
        return None
    if not isinstance(export, dict):
        raise TypeError(f'`export` must be a dict or None, got {export!r}')
    unknown = set(export) - {'out_dir', 'dataset_name', 'method_prefix',
                             'compression'}
    if unknown:
        raise ValueError(f'`export` has unknown keys {sorted(unknown)}; it '
                         'takes out_dir, dataset_name, method_prefix, '
                         'compression')
    for key in ('out_dir', 'dataset_name'):
        if not isinstance(export.get(key), str) or not export[key]:
            raise ValueError(f'`export` needs a non-empty str {key!r}, got '
                             f'{export.get(key)!r}')
    out = {**dict(method_prefix='', compression=None), **export}
    if not isinstance(out['method_prefix'], str):
        raise TypeError('`export` method_prefix must be a str, got '
                        f'{out["method_prefix"]!r}')
    check_compression(out['compression'])
    return out


def _check_threshold(threshold) -> None:
    """Validate ``component_threshold``."""
    if isinstance(threshold, dict):
        for k, v in threshold.items():
            if not isinstance(k, str):
                raise ValueError('`component_threshold` dict keys must be '
                                 f'scorer names, got {k!r}')
            threshold_rule(v)
    else:
        threshold_rule(threshold)


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    """A text table, one row per scorer, metrics in percent; undefined
    values (NaN) print as ``n/a``; a bootstrap interval ``<metric>_ci``
    follows its metric in brackets."""
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
    evaluated) and ``'tpr:<rate>'`` (the threshold at which the pixel TPR
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
    submission files of the evaluated frames (:mod:`~mmseg_ood.evaluation.
    smiyc_files`), each scorer's scores through a :class:`~mmseg_ood.
    evaluation.score_transform.Float16RankTransform` fitted from its pooled
    histogram (the non-void pixels, merged across ranks): every map is
    spilled, and each rank writes its frames in the same read-back that
    computes the component metrics, so exporting costs no second copy of
    the maps (as mmseg's ``IoUMetric`` writes submission files).

    Returned keys are ``<scorer>/<metric>`` (fractions in [0, 1]; NaN where
    undefined, shown as ``n/a`` in the logged table), and
    ``labels/voided_pixels``.

    Args:
        scorers: Names to evaluate; ``None`` = every name in ``ood_scores``.
        bits: Histogram resolution of :class:`PixelOODAccumulator`.
        ignore_index: Void label.
        tpr_points: TPR levels for ``fpr@tpr<p>``.
        component_threshold: ``'best_f1'``, ``'tpr:<rate>'``, a float, a
            dict of those by scorer, or ``None``.
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
            component threshold (``'best_f1'``, ``'tpr:<rate>'`` or
            ``'fixed'``); ``None`` before.
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
            raise ValueError(f'`component_preset` must be one of '
                             f'{sorted(SIZE_PRESETS)}, got '
                             f'{component_preset!r}')
        _check_threshold(component_threshold)
        if scorers is not None and (isinstance(scorers, str) or not all(
                isinstance(n, str) for n in scorers)):
            raise TypeError('`scorers` must be a list of scorer names or '
                            f'None, got {scorers!r}')
        if not isinstance(label_key, str):
            raise TypeError(f'`label_key` must be a str, got {label_key!r}')
        if not isinstance(per_image, bool):
            raise TypeError(f'`per_image` must be a bool, got {per_image!r}')
        PixelOODAccumulator(bits=bits, tpr_points=tpr_points)  # validates
        self.scorers = list(scorers) if scorers is not None else None
        self.bits = bits
        self.ignore_index = ignore_index
        # the rates of 'tpr:<rate>' thresholds are read off the pixel curve
        rules = component_threshold.values() if isinstance(
            component_threshold, dict) else [component_threshold]
        rates = [r[1] for r in map(threshold_rule, rules)
                 if r is not None and r[0] == 'tpr']
        self.tpr_points = tuple(tpr_points) + tuple(
            r for r in rates if r not in tpr_points)
        self.per_image = per_image
        self.dataset_name = dataset_name
        self.export = _check_export(export)
        self.bootstrap = check_bootstrap(bootstrap)
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
        self.reset()

    # state ------------------------------------------------------------------
    def _new_pixel(self, name: str) -> PixelOODAccumulator:
        return PixelOODAccumulator(self.bits, self.ignore_index,
                                  self.tpr_points, name)

    def _metric_for(self, name: str) -> PixelOODAccumulator:
        return self.accumulator(('pixel', name),
                                lambda: self._new_pixel(name))

    # mmengine interface --------------------------------------------------
    def process_sample(self, sample: dict) -> None:
        if 'ood_scores' not in sample:
            raise KeyError(
                'OODMetric: data sample has no `ood_scores`; add '
                "custom_hooks=[dict(type='OODScoringHook', "
                "scorers=[...])] to the config")
        if self.label_key not in sample:
            raise KeyError(
                f'OODMetric: data sample has no {self.label_key!r} OOD '
                'label map (0 ID, 1 OOD, 255 void); is LoadAnnotations '
                'in the test pipeline?')
        labels = sample[self.label_key]
        labels = to_numpy(labels['data'] if isinstance(labels, dict)
                          else labels.data).squeeze(0)
        scores = sample['ood_scores']
        names = self.scorers if self.scorers is not None else list(scores)
        missing = [n for n in names if n not in scores]
        if missing:
            raise KeyError(f'OODMetric: scorers {missing} are not in '
                           f'ood_scores (have {sorted(scores)})')
        image = sample.get('img_path')
        unlisted = sample.get('ood_unlisted')
        if unlisted is not None:
            self.accumulator(_LABELS, UnlistedLabelValues).update(
                sample.get('seg_map_path') or image, unlisted)
        y = flat_ood_labels(labels, self.ignore_index,
                            f'OODMetric ({image})')
        valid = None
        maps, gt = {}, None
        per_image = self._per_image_case(y, image)
        for name in names:
            s = to_numpy(scores[name])
            if s.shape != labels.shape:
                raise ValueError(
                    f'scorer {name!r}: score map {s.shape} and OOD labels '
                    f"{labels.shape} differ ({sample.get('img_path')})")
            flat, yy = s.reshape(-1), y
            if not check_finite(flat, y, name):
                # NaN / Inf only on void pixels: leave those out
                valid = y != VOID if valid is None else valid
                flat, yy = flat[valid], y[valid]
            if per_image is None:
                self._metric_for(name).update_valid(flat, yy)
            else:  # the image's own histogram, then into the pooled one
                own = self._new_pixel(name).update_valid(flat, yy)
                per_image[name] = own.compute()
                self._metric_for(name).merge(own)
            t = self._requested_threshold(name)
            if self.export is not None:
                if np.isnan(s).any():  # void pixels too: they are exported
                    raise ValueError(
                        f'scorer {name!r}: {image} has NaN scores, which '
                        'the SMIYC export cannot rank')
                maps[name] = s
            elif threshold_rule(t) is not None or self.bootstrap is not None:
                maps[name] = s
            if t is not None and threshold_rule(t) is None:  # fixed
                if gt is None:
                    gt = GroundTruthComponents(
                        y.reshape(labels.shape), self._min_gt_size,
                        VOID)
                self._fixed_for(name, t).update(s, None, gt=gt)
        if per_image:
            self.accumulator(_PER_IMAGE, PerImageOODMetrics).update(
                image, per_image)
        if maps:
            self.spill(y.reshape(labels.shape), maps, tag=image)
        # nothing goes to self.results: the accumulators are the state

    def _per_image_case(self, y: np.ndarray, image) -> Optional[dict]:
        """A dict to fill with the image's metrics by scorer, or ``None``
        (per-image metrics off, or the image skipped: recorded)."""
        if not self.per_image:
            return None
        present = np.bincount(y, minlength=3)
        if present[0] and present[1]:
            return {}
        self.accumulator(_PER_IMAGE, PerImageOODMetrics).update(
            image, skipped='no OOD pixels' if present[0] else
            'no ID pixels' if present[1] else 'all void')
        return None

    def _requested_threshold(self, name: str):
        t = self.component_threshold
        return t.get(name) if isinstance(t, dict) else t

    def _new_components(self, threshold: float) -> ComponentAccumulator:
        return ComponentAccumulator(threshold, preset=self.component_preset,
                                    ignore_index=self.ignore_index)

    def _fixed_for(self, name: str, threshold) -> ComponentAccumulator:
        return self.accumulator(
            ('fixed', name), lambda: self._new_components(float(threshold)))

    @property
    def _min_gt_size(self) -> int:
        return SIZE_PRESETS[self.component_preset][1]

    def _read_back(self, thresholds: Dict[str, float],
                   transforms: Dict[str, Float16RankTransform],
                   knots: Dict[str, np.ndarray]
                   ) -> Tuple[dict, Dict[str, ImageHistograms]]:
        """One pass over this rank's spilled maps: the component
        accumulators at ``thresholds``, the export's files of the maps
        through ``transforms``, and the per-image histograms in the
        bootstrap bins of ``knots``."""
        accs = {n: self._new_components(t) for n, t in thresholds.items()}
        hists = {n: ImageHistograms(k) for n, k in knots.items()}
        ex = self.export
        for image, labels, maps in self.spilled():
            gt = None
            for n, m in maps.items():
                if n in hists:
                    hists[n].update(image, m, labels)
                if n in accs:
                    if gt is None:
                        gt = GroundTruthComponents(labels, self._min_gt_size,
                                                   VOID)
                    accs[n].update(m, None, gt=gt)
                if n in transforms:
                    write_frame(frame_file(ex['out_dir'],
                                           ex['method_prefix'] + n,
                                           ex['dataset_name'], image),
                                transforms[n](m), ex['compression'])
        return accs, hists

    def _intervals(self, results: dict,
                   hists: Dict[str, ImageHistograms]) -> dict:
        """Add each scorer's bootstrap intervals to ``results``; return
        :attr:`last_bootstrap`."""
        b = self.bootstrap
        info = dict(b, images=0, undefined=0, bin_error={})
        for n, h in hists.items():
            got = image_bootstrap(h.compute()['counts'], b['samples'],
                                  b['seed'], b['level'])
            for k in BOOTSTRAP_KEYS:
                results[n][f'{k}_ci'] = got[f'{k}_ci']
            info['bin_error'][n] = {k: got['binned'][k] - results[n][k]
                                    for k in BOOTSTRAP_KEYS}
            info['images'] = max(info['images'], got['images'])
            info['undefined'] = max(info['undefined'], got['undefined'])
        if info['undefined'] and get_rank() == 0:
            warnings.warn(
                f"OODMetric bootstrap: {info['undefined']} of {b['samples']} "
                f"resamples of the {info['images']} images have no OOD or no "
                'ID pixels; the intervals are over the others')
        return info

    def compute_accumulated(self, local) -> dict:
        """Merge across ranks and compute; the same result on every rank."""
        own = {kind: OrderedDict((n, a) for (k, n), a in local.items()
                                 if k == kind) for kind in ('pixel', 'fixed')}
        per_image = _merged(local, _PER_IMAGE, PerImageOODMetrics) \
            if self.per_image else None
        labels = _merged(local, _LABELS, UnlistedLabelValues).compute()
        # 1. pixel metrics: every rank's (sparse) histograms
        pixel = merge_across_ranks(own['pixel'], self._new_pixel)
        if not pixel:
            warnings.warn('OODMetric got no samples')
            return {}
        results = OrderedDict((n, m.compute()) for n, m in pixel.items())
        # 2. component metrics at thresholds read off the pixel curves (a
        #    second pass over each rank's spilled maps) and at fixed
        #    thresholds (streamed); the thresholds are the same on every rank
        deferred, rules = {}, {}
        for n in pixel:
            t = self._requested_threshold(n)
            rule = threshold_rule(t)
            if rule is None:
                rules[n] = 'fixed' if t is not None else 'none'
                continue
            rules[n] = t if rule[0] == 'best_f1' else f'tpr:{rule[1]:g}'
            key = 'best_f1_threshold' if rule[0] == 'best_f1' else \
                f'threshold@tpr{rule[1]:g}'
            value = results[n][key]
            if value == value:  # undefined without OOD or ID pixels
                deferred[n] = float(value)
        ex = self.export
        self.last_transforms = {} if ex is None else fit_transforms(
            pixel, ex['out_dir'], ex['method_prefix'], ex['dataset_name'],
            'every non-void pixel of the evaluated frames')
        knots = {} if self.bootstrap is None else {
            n: bootstrap_knots(m, self.bootstrap['bins'])
            for n, m in pixel.items()}
        accs, hists = self._read_back(deferred, self.last_transforms, knots)
        components = merge_across_ranks(accs)
        components.update(merge_across_ranks(
            own['fixed'],
            lambda n: self._new_components(self._requested_threshold(n))))
        for n, acc in components.items():
            results[n].update(acc.compute())
        bootstrap = None
        if knots:  # every rank's images, in name order
            bootstrap = self._intervals(results, merge_across_ranks(
                hists, lambda n: ImageHistograms(knots[n])))
        if per_image is not None:
            averaged = per_image.compute()
            for n in results:
                results[n].update(averaged.get(n) or {
                    **{f'per_image_{k}': float('nan')
                       for k in PER_IMAGE_KEYS},
                    'per_image_images': 0,
                    'per_image_skipped': len(per_image.skipped)})
        if get_rank() == 0:
            print_log('\n' + format_table(results), logger='current')
            warn_unlisted_values(self.dataset_name or 'the evaluated dataset',
                                 labels)
        self.last_results, self.last_pixel = results, pixel
        self.last_labels, self.last_bootstrap = labels, bootstrap
        self.last_thresholds, self.last_per_image = rules, per_image
        flat = {f'{n}/{k}': v for n, r in results.items()
                for k, v in r.items()}
        flat['labels/voided_pixels'] = labels['voided_pixels']
        return flat
