"""The jobs :class:`~mmseg_ood.evaluation.metrics.ood_metric.OODMetric` is
made of, one unit each.

:class:`ScoredImage` reads and checks a data sample once for all jobs.
Each job then has a per-sample step, ``process``, that updates the
accumulators it owns (through the metric's ``accumulator(key, factory)``,
which leaves out a padding repeat; the keys start with the job's ``kind``),
and a compute step that merges them across ranks
(:func:`~mmseg_ood.evaluation.accumulators.base.merge_across_ranks`) and
computes. A job that needs a second look at the maps says which in
``needs_map(scorer)``; the metric spills those, and after the pixel
histograms are merged it runs one read-back over the spill for all of
them: ``start`` (with what it needs of the merged pixel metrics), ``read``
per spilled image, and ``finish`` where a result is merged.

- :class:`LabelChecksJob`: unlisted label values, ``('labels', '')``;
- :class:`PerImageJob`: each image's own metrics, ``('per_image', '')``
  (its histograms are then merged into the pooled ones);
- :class:`PixelMetricsJob`: the pooled histograms, ``('pixel', scorer)``;
- :class:`FixedComponentsJob`: components at a fixed threshold,
  ``('fixed', scorer)``;
- :class:`DeferredComponentsJob`: components at a threshold read off the
  pooled pixel curve, or off the SMIYC benchmark's binned curve (read-back);
- :class:`BootstrapJob`: per-image histograms in bins of the pooled
  histograms (read-back), then the intervals;
- :class:`ExportJob`: SMIYC frames through transforms fitted from the
  pooled histograms (read-back).
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import (Callable, Dict, Hashable, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
from mmengine.dist import get_rank

from ...errors import InvalidValueError, OODNotice
from ...formats.smiyc import SMIYCExport
from ..accumulators.base import merge_across_ranks
from ..accumulators.bootstrap import (BOOTSTRAP_KEYS, ImageHistograms,
                                      bootstrap_knots, image_bootstrap)
from ..accumulators.components import (DEFAULT_TAUS, SIZE_PRESETS,
                                       SMIYC_TAUS, ComponentAccumulator,
                                       GroundTruthComponents,
                                       SMIYCBinnedCurve)
from ..accumulators.label_checks import (UnlistedLabelValues,
                                         warn_unlisted_values)
from ..accumulators.per_image import (PER_IMAGE_KEYS, PerImageOODMetrics,
                                      image_facts)
from ..accumulators.pixel import PixelOODAccumulator
from ..accumulators.score_transform import Float16RankTransform
from ..functional.inputs import VOID, check_finite, flat_ood_labels, to_numpy

__all__ = [
    'threshold_rule', 'check_component_threshold', 'ScoredImage',
    'ComponentThresholds', 'LabelChecksJob', 'PerImageJob',
    'PixelMetricsJob', 'FixedComponentsJob', 'DeferredComponentsJob',
    'BootstrapJob', 'ExportJob'
]

#: ``accumulator(key, factory)``: the metric's accumulator ``key`` of the
#: current sample (:meth:`~mmseg_ood.evaluation.metrics.
#: accumulating_metric.AccumulatingMetric.accumulator`).
Accumulate = Callable[[Hashable, Callable[[], object]], object]
#: This rank's accumulators by key, as ``compute_accumulated`` gets them.
Local = Mapping[Hashable, object]
#: A spilled image's score maps by scorer.
Maps = Dict[str, np.ndarray]


def threshold_rule(t) -> Optional[Tuple[str, float]]:
    """``('best_f1', nan)``, ``('smiyc', nan)`` or ``('tpr', rate)`` for a
    threshold known only after the pass; ``None`` for a number or ``None``.

    Args:
        t: A ``component_threshold`` value: ``'best_f1'`` (the best pixel-F1
            threshold, exact, ``score >= t``), ``'smiyc'`` (the SMIYC
            benchmark's own choice: the best-F1 threshold of its binned
            pixel curve, ``score > t``, its tau grid), ``'tpr:<rate>'`` (the
            threshold at that OOD pixel TPR), a finite number (a fixed
            threshold) or ``None`` (no component metrics).

    Returns:
        tuple or None: ``(rule, rate)`` for a rule, ``None`` otherwise.

    Raises:
        ValueError: ``t`` is none of ``'best_f1'``, ``'smiyc'``,
            ``'tpr:<rate>'`` (rate in (0, 1]), a finite number or ``None``.
    """
    if t is None or (isinstance(t, (int, float)) and not isinstance(t, bool)
                     and np.isfinite(t)):
        return None
    if t in ('best_f1', 'smiyc'):
        return (t, float('nan'))
    if isinstance(t, str) and t.startswith('tpr:'):
        try:
            rate = float(t[4:])
        except ValueError:
            rate = float('nan')
        if 0.0 < rate <= 1.0:
            return ('tpr', rate)
    raise InvalidValueError(
        "`component_threshold` must be 'best_f1', 'smiyc', 'tpr:<rate>' "
        "(rate in (0, 1], e.g. 'tpr:0.95'), a finite number, None, or a dict "
        f'{{scorer: one of those}}, got {t!r}')


def check_component_threshold(threshold) -> None:
    """Validate ``component_threshold`` (see :func:`threshold_rule`).

    Args:
        threshold: One value :func:`threshold_rule` takes, or a dict
            ``{scorer name: such a value}``.

    Raises:
        ValueError: a dict key that is not a str, or a value
            :func:`threshold_rule` rejects.
    """
    if isinstance(threshold, dict):
        for k, v in threshold.items():
            if not isinstance(k, str):
                raise InvalidValueError(
                    '`component_threshold` dict keys must be '
                    f'scorer names, got {k!r}')
            threshold_rule(v)
    else:
        threshold_rule(threshold)


def _own(local: Local, kind: str) -> 'OrderedDict[str, object]':
    """The accumulators ``(kind, name)`` of ``local``, by name."""
    return OrderedDict((n, a) for (k, n), a in local.items() if k == kind)


def _merged_one(local: Local, key: Hashable, factory):
    """The accumulator ``key`` of every rank, merged (``factory()`` where no
    rank has one)."""
    part = {'': local[key]} if key in local else {}
    return merge_across_ranks(part, lambda _: factory()).get('') or factory()


class ScoredImage:
    """One data sample as the jobs read it, checked once for all of them.

    Args:
        image: The image path (``None`` if the sample has none).
        labels: ``(H, W)`` uint8: 0 ID, 1 OOD, ``VOID`` (2) void.
        maps: Scorer -> its ``(H, W)`` score map, as the sample holds it.
        counted: Scorer -> ``(scores, labels)``, 1-D: the pixels the
            metrics count (all, or the non-void ones where void pixels hold
            NaN / Inf).
    """

    __slots__ = ('image', 'labels', 'maps', 'counted')

    def __init__(self, image: Optional[str], labels: np.ndarray, maps: Maps,
                 counted: Dict[str, Tuple[np.ndarray, np.ndarray]]):
        self.image = image
        self.labels = labels
        self.maps = maps
        self.counted = counted

    @property
    def flat_labels(self) -> np.ndarray:
        """``labels`` as 1-D (a view)."""
        return self.labels.reshape(-1)

    @classmethod
    def read(cls, labels, scores: Mapping, names: Sequence[str],
             image: Optional[str], ignore_index: int,
             checks: Sequence[Callable[[str, np.ndarray, object], None]] = ()
             ) -> 'ScoredImage':
        """Check and format a sample's OOD ``labels`` (``(H, W)``, 0 / 1 /
        ``ignore_index``) and the ``scores`` of ``names``; each map goes
        through ``checks(name, map, image)`` too (after its own checks).

        Raises:
            ValueError: a label value other than 0, 1, ``ignore_index``; a
                map of another shape than the labels; NaN / Inf on a
                non-void pixel; or what a check raises.
        """
        y = flat_ood_labels(labels, ignore_index, f'OODMetric ({image})')
        valid = None
        maps, counted = OrderedDict(), OrderedDict()
        for name in names:
            s = to_numpy(scores[name])
            if s.shape != labels.shape:
                raise InvalidValueError(
                    f'scorer {name!r}: score map {s.shape} and OOD labels '
                    f'{labels.shape} differ ({image})')
            flat, yy = s.reshape(-1), y
            if not check_finite(flat, y, name):
                # NaN / Inf only on void pixels: leave those out
                valid = y != VOID if valid is None else valid
                flat, yy = flat[valid], y[valid]
            for check in checks:
                check(name, s, image)
            maps[name], counted[name] = s, (flat, yy)
        return cls(image, y.reshape(labels.shape), maps, counted)


class ComponentThresholds:
    """Each scorer's component threshold as ``component_threshold`` asks
    (see :class:`~mmseg_ood.evaluation.OODMetric`), and the component
    accumulator at a threshold.

    Args:
        component_threshold: ``'best_f1'``, ``'smiyc'``, ``'tpr:<rate>'``,
            a number, a dict of those by scorer, or ``None`` (checked by
            :func:`check_component_threshold`).
        preset: A key of ``SIZE_PRESETS``.
        ignore_index: Void label.
    """

    def __init__(self, component_threshold: Union[str, float, dict, None],
                 preset: str, ignore_index: int):
        self.component_threshold = component_threshold
        self.preset = preset
        self.ignore_index = ignore_index
        self.min_gt_size = SIZE_PRESETS[preset][1]

    def _values(self):
        t = self.component_threshold
        return list(t.values()) if isinstance(t, dict) else [t]

    def tpr_rates(self) -> Tuple[float, ...]:
        """The rates of the ``'tpr:<rate>'`` thresholds (read off the
        pixel curve, so the pixel metrics must compute them)."""
        return tuple(r[1] for r in map(threshold_rule, self._values())
                     if r is not None and r[0] == 'tpr')

    def any_fixed(self) -> bool:
        """Whether some scorer may get a fixed threshold."""
        return any(t is not None and threshold_rule(t) is None
                   for t in self._values())

    def any_deferred(self) -> bool:
        """Whether some scorer may get a threshold known after the pass."""
        return any(threshold_rule(t) is not None for t in self._values())

    def requested(self, name: str):
        """What ``component_threshold`` asks for scorer ``name``."""
        t = self.component_threshold
        return t.get(name) if isinstance(t, dict) else t

    def fixed(self, name: str) -> Optional[float]:
        """Scorer ``name``'s fixed threshold; ``None`` if it has none."""
        t = self.requested(name)
        return t if t is not None and threshold_rule(t) is None else None

    def deferred(self, name: str) -> Optional[Tuple[str, float]]:
        """Scorer ``name``'s rule known after the pass
        (:func:`threshold_rule`); ``None`` if it has none."""
        return threshold_rule(self.requested(name))

    def describe(self, name: str) -> str:
        """Scorer ``name``'s rule as :attr:`OODMetric.last_thresholds`
        reports it: ``'best_f1'``, ``'smiyc'``, ``'tpr:<rate>'``,
        ``'fixed'`` or ``'none'``."""
        t = self.requested(name)
        rule = threshold_rule(t)
        if rule is None:
            return 'fixed' if t is not None else 'none'
        return f'tpr:{rule[1]:g}' if rule[0] == 'tpr' else rule[0]

    def new(self, threshold, smiyc: bool = False) -> ComponentAccumulator:
        """An empty component accumulator at ``threshold``; ``smiyc``: the
        benchmark's ``score > threshold`` and tau grid."""
        return ComponentAccumulator(
            threshold, preset=self.preset, ignore_index=self.ignore_index,
            strict=smiyc, taus=SMIYC_TAUS if smiyc else DEFAULT_TAUS)

    def ground_truth(self, labels: np.ndarray) -> GroundTruthComponents:
        """The ground-truth components of ``labels`` (0 / 1 / ``VOID``)."""
        return GroundTruthComponents(labels, self.min_gt_size, VOID)


class LabelChecksJob:
    """Label values the dataset's ``value_map`` does not list, added up
    over the dataset (one :class:`UnlistedLabelValues`) and warned about.

    Args:
        dataset_name: How the warning names the dataset (``None``: "the
            evaluated dataset").
    """

    key = ('labels', '')

    def __init__(self, dataset_name: Optional[str] = None):
        self.dataset_name = dataset_name

    def process(self, sample: dict, accumulator: Accumulate) -> None:
        """Add the sample's ``ood_unlisted`` record, if any."""
        unlisted = sample.get('ood_unlisted')
        if unlisted is not None:
            accumulator(self.key, UnlistedLabelValues).update(
                sample.get('seg_map_path') or sample.get('img_path'),
                unlisted)

    def merge(self, local: Local) -> dict:
        """Every rank's records: :meth:`UnlistedLabelValues.compute`."""
        return _merged_one(local, self.key, UnlistedLabelValues).compute()

    def warn(self, summary: dict) -> None:
        """One warning naming the files, values and pixel counts."""
        warn_unlisted_values(self.dataset_name or 'the evaluated dataset',
                             summary)


class PixelMetricsJob:
    """Pooled pixel metrics (AUROC, AP, FPR@TPR, best F1 and the
    thresholds): one :class:`PixelOODAccumulator` per scorer.

    Args:
        bits / ignore_index / tpr_points: Of each
            :class:`PixelOODAccumulator`.
    """

    kind = 'pixel'

    def __init__(self, bits: int, ignore_index: int,
                 tpr_points: Sequence[float]):
        self.bits = bits
        self.ignore_index = ignore_index
        self.tpr_points = tuple(tpr_points)

    def new(self, name: str) -> PixelOODAccumulator:
        """An empty histogram for scorer ``name``."""
        return PixelOODAccumulator(self.bits, self.ignore_index,
                                   self.tpr_points, name)

    def process(self, image: ScoredImage, accumulator: Accumulate,
                own: Optional[Dict[str, PixelOODAccumulator]] = None
                ) -> None:
        """Count the image's pixels into each scorer's histogram, or merge
        its ``own`` histograms (:meth:`PerImageJob.process`) if given."""
        for name, (flat, yy) in image.counted.items():
            pooled = accumulator((self.kind, name),
                                 lambda n=name: self.new(n))
            if own is None:
                pooled.update_valid(flat, yy)
            else:
                pooled.merge(own[name])

    def merge(self, local: Local) -> 'OrderedDict[str, PixelOODAccumulator]':
        """Every rank's histograms, by scorer."""
        return merge_across_ranks(_own(local, self.kind), self.new)


class PerImageJob:
    """AUROC / AP / FPR95 of each image with ID and OOD pixels, averaged
    (one :class:`PerImageOODMetrics`; the others are recorded as skipped).

    Args:
        pixel: Makes the images' own histograms (the pooled ones' binning).
    """

    key = ('per_image', '')

    def __init__(self, pixel: PixelMetricsJob):
        self.pixel = pixel

    def process(self, image: ScoredImage, accumulator: Accumulate
                ) -> Optional[Dict[str, PixelOODAccumulator]]:
        """Record the image's metrics; return its own histograms by scorer
        (to merge into the pooled ones), or ``None`` if it is skipped."""
        facts = image_facts(image.labels, VOID)
        present = facts['id_pixels'], facts['ood_pixels']
        if not (present[0] and present[1]):
            accumulator(self.key, PerImageOODMetrics).update(
                image.image, skipped='no OOD pixels' if present[0] else
                'no ID pixels' if present[1] else 'all void', facts=facts)
            return None
        own = OrderedDict((n, self.pixel.new(n).update_valid(flat, yy))
                          for n, (flat, yy) in image.counted.items())
        if own:
            accumulator(self.key, PerImageOODMetrics).update(
                image.image, {n: h.compute() for n, h in own.items()},
                facts=facts)
        return own

    def merge(self, local: Local) -> PerImageOODMetrics:
        """Every rank's images."""
        return _merged_one(local, self.key, PerImageOODMetrics)

    @staticmethod
    def finish(merged: PerImageOODMetrics, results: dict) -> None:
        """Add each scorer's averages to ``results`` (NaN, with 0 images,
        for a scorer no image could average)."""
        averaged = merged.compute()
        for n in results:
            results[n].update(averaged.get(n) or {
                **{f'per_image_{k}': float('nan') for k in PER_IMAGE_KEYS},
                'per_image_images': 0,
                'per_image_skipped': len(merged.skipped)})


class FixedComponentsJob:
    """Component metrics of the scorers with a fixed threshold, streamed:
    one :class:`ComponentAccumulator` per scorer, the image's ground-truth
    components labelled once for all of them.

    Args:
        thresholds: Each scorer's threshold.
    """

    kind = 'fixed'

    def __init__(self, thresholds: ComponentThresholds):
        self.thresholds = thresholds

    def process(self, image: ScoredImage, accumulator: Accumulate) -> None:
        """Update each scorer with a fixed threshold."""
        gt = None
        for name, s in image.maps.items():
            t = self.thresholds.fixed(name)
            if t is None:
                continue
            if gt is None:
                gt = self.thresholds.ground_truth(image.labels)
            accumulator((self.kind, name),
                        lambda t=t: self.thresholds.new(float(t))).update(
                            s, None, gt=gt)

    def merge(self, local: Local) -> 'OrderedDict[str, ComponentAccumulator]':
        """Every rank's accumulators, by scorer."""
        return merge_across_ranks(
            _own(local, self.kind),
            lambda n: self.thresholds.new(self.thresholds.requested(n)))


class DeferredComponentsJob:
    """Component metrics at thresholds read off the pooled pixel curve
    (``'best_f1'``, ``'tpr:<rate>'``) or off the SMIYC benchmark's binned
    pixel curve (``'smiyc'``: one
    :class:`~mmseg_ood.evaluation.accumulators.components.SMIYCBinnedCurve`
    per scorer, ``('smiyc_curve', scorer)``, fed every sample): the maps
    are spilled and counted in the read-back, the image's ground-truth
    components labelled once for all scorers.

    Args:
        thresholds: Each scorer's threshold rule.
    """

    kind = 'smiyc_curve'

    def __init__(self, thresholds: ComponentThresholds):
        self.thresholds = thresholds
        self._accs: Dict[str, ComponentAccumulator] = {}

    def needs_map(self, name: str) -> bool:
        """Whether scorer ``name``'s maps are read back."""
        return self.thresholds.deferred(name) is not None

    def _smiyc(self, name: str) -> bool:
        rule = self.thresholds.deferred(name)
        return rule is not None and rule[0] == 'smiyc'

    def process(self, image: ScoredImage, accumulator: Accumulate) -> None:
        """Bin the image's pixels for the scorers with the ``'smiyc'``
        rule."""
        for name, (flat, yy) in image.counted.items():
            if self._smiyc(name):
                accumulator((self.kind, name),
                            lambda n=name: SMIYCBinnedCurve(name=n)
                            ).update_valid(flat, yy)

    def start(self, results: Mapping[str, dict], local: Local) -> None:
        """Read each scorer's threshold off its pooled pixel metrics
        ``results``, or (``'smiyc'``) off its binned curve, every rank's
        frames merged in rank order (the same on every rank; none where
        undefined, without OOD or ID pixels)."""
        self._accs = {}
        curves = {}
        if any(self._smiyc(n) for n in results):  # the same on every rank
            curves = merge_across_ranks(_own(local, self.kind),
                                        lambda n: SMIYCBinnedCurve(name=n))
        for n, r in results.items():
            rule = self.thresholds.deferred(n)
            if rule is None:
                continue
            if rule[0] == 'smiyc':
                value = curves[n].compute()['smiyc_threshold'] \
                    if n in curves else float('nan')
            else:
                value = r['best_f1_threshold' if rule[0] == 'best_f1' else
                          f'threshold@tpr{rule[1]:g}']
            if value == value:
                self._accs[n] = self.thresholds.new(
                    float(value), smiyc=rule[0] == 'smiyc')

    def read(self, image: Optional[str], labels: np.ndarray,
             maps: Maps) -> None:
        """Count one spilled image."""
        gt = None
        for n, m in maps.items():
            if n in self._accs:
                if gt is None:
                    gt = self.thresholds.ground_truth(labels)
                self._accs[n].update(m, None, gt=gt)

    def finish(self) -> 'OrderedDict[str, ComponentAccumulator]':
        """Every rank's accumulators, by scorer."""
        accs, self._accs = self._accs, {}
        return merge_across_ranks(accs)


class BootstrapJob:
    """Percentile bootstrap intervals of the pooled AUROC / AP / FPR95,
    images resampled (:mod:`~mmseg_ood.evaluation.accumulators.bootstrap`):
    every map is read back into per-image histograms in quantile bins of
    the pooled histogram.

    Args:
        settings: The checked ``bootstrap`` option (``samples``, ``seed``,
            ``level``, ``bins``).
    """

    def __init__(self, settings: dict):
        self.settings = settings
        self._hists: Dict[str, ImageHistograms] = {}

    @staticmethod
    def needs_map(name: str) -> bool:
        """Every scorer's maps are read back."""
        return True

    def start(self, pixel: Mapping[str, PixelOODAccumulator]) -> None:
        """The bins of each scorer, from its merged histogram (the same on
        every rank)."""
        self._hists = {
            n: ImageHistograms(bootstrap_knots(m, self.settings['bins']))
            for n, m in pixel.items()}

    def read(self, image: Optional[str], labels: np.ndarray,
             maps: Maps) -> None:
        """Count one spilled image into its own histogram."""
        for n, m in maps.items():
            if n in self._hists:
                self._hists[n].update(image, m, labels)

    def finish(self, results: dict) -> dict:
        """Gather every rank's images (in name order), add each scorer's
        intervals ``<metric>_ci`` to ``results``, and return the summary
        (:attr:`OODMetric.last_bootstrap`); rank 0 warns about resamples
        without OOD or ID pixels."""
        hists, self._hists = self._hists, {}
        merged = merge_across_ranks(
            hists, lambda n: ImageHistograms(hists[n].knots))
        b = self.settings
        info = dict(b, images=0, undefined=0, bin_error={})
        for n, h in merged.items():
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
                'ID pixels; the intervals are over the others', OODNotice)
        return info


class ExportJob:
    """The SMIYC submission files of the evaluated frames, through one
    :class:`Float16RankTransform` per scorer fitted from its pooled
    histogram (:class:`~mmseg_ood.formats.smiyc.SMIYCExport`): every map is
    checked for NaN as it comes and written in the read-back.

    Args:
        export: The export (``transform='rank'``).
    """

    #: What the transforms are fitted on, as their record says.
    FITTED_ON = 'every non-void pixel of the evaluated frames'

    def __init__(self, export: SMIYCExport):
        self.export = export

    def check(self, name: str, score_map: np.ndarray, image) -> None:
        """NaN cannot be ranked into a file (void pixels too)."""
        self.export.check_map(name, score_map, image)

    @staticmethod
    def needs_map(name: str) -> bool:
        """Every scorer's maps are read back."""
        return True

    def start(self, pixel: Mapping[str, PixelOODAccumulator]
              ) -> 'OrderedDict[str, Float16RankTransform]':
        """Fit (and on rank 0 record) each scorer's transform from its
        merged histogram; return them."""
        return self.export.fit(pixel, self.FITTED_ON)

    def read(self, image: Optional[str], labels: np.ndarray,
             maps: Maps) -> None:
        """Write one spilled image's frames."""
        for n, m in maps.items():
            if n in self.export.transforms:
                self.export.write(n, image, m)
