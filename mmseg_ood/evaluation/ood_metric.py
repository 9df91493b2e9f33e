"""The mmseg metric: every scorer's OOD metrics in one evaluation."""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import numpy as np
from mmengine.dist import get_rank
from mmengine.logging import print_log

from mmseg.registry import METRICS
from ..labels import IGNORE_INDEX
from ..utils.arguments import strict_arguments
from .accumulating_metric import AccumulatingMetric
from .accumulator import merge_across_ranks
from .components import (SIZE_PRESETS, ComponentAccumulator,
                         GroundTruthComponents)
from .inputs import VOID, check_finite, flat_ood_labels, to_numpy
from .report import COLUMNS, percent
from .score_map_spill import ScoreMapSpill
from .streaming import StreamingOODMetric


def _check_threshold(threshold) -> None:
    """Validate ``component_threshold``."""
    def ok(t):
        return t is None or (isinstance(t, (int, float)) and not isinstance(
            t, bool) and np.isfinite(t))
    if threshold == 'best_f1' or ok(threshold):
        return
    if isinstance(threshold, dict) and all(
            isinstance(k, str) and (v == 'best_f1' or ok(v))
            for k, v in threshold.items()):
        return
    raise ValueError("`component_threshold` must be 'best_f1', a finite "
                     "number, None, or a dict {scorer: 'best_f1' | number | "
                     f'None}}, got {threshold!r}')


def format_table(results: Dict[str, Dict[str, float]]) -> str:
    """A text table, one row per scorer, metrics in percent; undefined
    values (NaN) print as ``n/a``."""
    from prettytable import PrettyTable
    cols = [(k, t) for k, t in COLUMNS
            if any(k in r for r in results.values())]
    table = PrettyTable(['scorer'] + [t for _, t in cols])
    for name, r in results.items():
        table.add_row([name] + [percent(r.get(k)) for k, _ in cols])
    return table.get_string()


@METRICS.register_module()
@strict_arguments
class OODMetric(AccumulatingMetric):
    """Pixel and component OOD metrics for all scorers, distributed-safe.

    Reads ``data_sample['ood_scores'][name]`` (filled by
    :class:`~mmseg_ood.engine.OODScoringHook`) and the OOD label map
    ``data_sample[label_key]`` (0 ID, 1 OOD, 255 void); the labels are
    checked once per image for all scorers. Pixel metrics stream into one
    :class:`StreamingOODMetric` per scorer (pages allocated where scores
    fall: usually under 1 MiB each, at most 32 MiB at ``bits=20``); under
    distributed evaluation the accumulators are gathered and merged on every
    rank, so the result equals a single process's (the repeats that
    distributed sampling pads the last batch with are left out).

    Component metrics (SMIYC sIoU, PPV, mean F1) need a threshold per
    scorer. ``component_threshold='best_f1'`` uses the best pixel-F1
    threshold, known only after all pixels are seen: each rank then appends
    its score maps to a file (raw float32 and uint8 labels; a
    :class:`~mmseg_ood.evaluation.score_map_spill.ScoreMapSpill` under
    ``spill_dir``, removed after evaluation, on errors and at exit), not to
    memory, and reads them back once, labelling each image's ground-truth
    components once for all scorers. A float or a ``{scorer: float}`` dict
    uses fixed thresholds; ``None`` skips component metrics.

    Returned keys are ``<scorer>/<metric>`` (fractions in [0, 1]; NaN where
    undefined, shown as ``n/a`` in the logged table).

    Args:
        scorers: Names to evaluate; ``None`` = every name in ``ood_scores``.
        bits: Histogram resolution of :class:`StreamingOODMetric`.
        ignore_index: Void label.
        tpr_points: TPR levels for ``fpr@tpr<p>``.
        component_threshold: ``'best_f1'``, a float, a dict or ``None``.
        component_preset: ``'anomaly_track'`` (500 / 100 px) or
            ``'obstacle_track'`` (50 / 10 px) size filters.
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
            :class:`StreamingOODMetric` (for ROC / PR curves); ``None``
            before.

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
        StreamingOODMetric(bits=bits, tpr_points=tpr_points)  # validates
        self.scorers = list(scorers) if scorers is not None else None
        self.bits = bits
        self.ignore_index = ignore_index
        self.tpr_points = tuple(tpr_points)
        self.component_threshold = component_threshold
        self.component_preset = component_preset
        self.label_key = label_key
        self.spill_dir = spill_dir
        self.last_results: Optional[Dict[str, Dict[str, float]]] = None
        self.last_pixel: Optional[Dict[str, StreamingOODMetric]] = None
        self._spill: Optional[ScoreMapSpill] = None
        self.reset()

    # state ------------------------------------------------------------------
    def reset(self) -> None:
        """Drop the accumulators and the spilled score maps."""
        super().reset()
        if getattr(self, '_spill', None) is not None:
            self._spill.close()
        self._spill = None

    def _new_pixel(self, name: str) -> StreamingOODMetric:
        return StreamingOODMetric(self.bits, self.ignore_index,
                                  self.tpr_points, name)

    def _metric_for(self, name: str) -> StreamingOODMetric:
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
        y = flat_ood_labels(labels, self.ignore_index,
                            f"OODMetric ({sample.get('img_path')})")
        valid = None
        maps, gt = {}, None
        for name in names:
            s = to_numpy(scores[name])
            if s.shape != labels.shape:
                raise ValueError(
                    f'scorer {name!r}: score map {s.shape} and OOD labels '
                    f"{labels.shape} differ ({sample.get('img_path')})")
            flat = s.reshape(-1)
            if check_finite(flat, y, name):
                self._metric_for(name).update_valid(flat, y)
            else:  # NaN / Inf only on void pixels: leave those out
                valid = y != VOID if valid is None else valid
                self._metric_for(name).update_valid(flat[valid],
                                                    y[valid])
            t = self._requested_threshold(name)
            if t == 'best_f1':
                maps[name] = s
            elif t is not None:
                if gt is None:
                    gt = GroundTruthComponents(
                        y.reshape(labels.shape), self._min_gt_size,
                        VOID)
                self._fixed_for(name, t).update(s, None, gt=gt)
        if maps:
            if self._spill is None:
                self._spill = ScoreMapSpill(self.spill_dir)
            self._spill.append(self.samples.num_samples,
                               y.reshape(labels.shape), maps)
        # nothing goes to self.results: the accumulators are the state

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

    def _best_f1_components(self, thresholds: Dict[str, float]) -> dict:
        """Component accumulators of this rank's spilled maps at
        ``thresholds``."""
        accs = {n: self._new_components(t) for n, t in thresholds.items()}
        if self._spill is not None:
            for labels, maps in self._spill.read():
                gt = GroundTruthComponents(labels, self._min_gt_size, VOID)
                for n, m in maps.items():
                    if n in accs:
                        accs[n].update(m, None, gt=gt)
        return accs

    def compute_accumulated(self, local) -> dict:
        """Merge across ranks and compute; the same result on every rank."""
        if self._spill is not None and self.samples.last_dropped:
            self._spill.drop(self.samples.num_samples)  # a padding repeat
        own = {kind: OrderedDict((n, a) for (k, n), a in local.items()
                                 if k == kind) for kind in ('pixel', 'fixed')}
        # 1. pixel metrics: every rank's (sparse) histograms
        pixel = merge_across_ranks(own['pixel'], self._new_pixel)
        if not pixel:
            warnings.warn('OODMetric got no samples')
            return {}
        results = OrderedDict((n, m.compute()) for n, m in pixel.items())
        # 2. component metrics at the best pixel-F1 threshold (a second
        #    pass over each rank's spilled maps) and at fixed thresholds
        #    (streamed); the thresholds are the same on every rank
        best = {}
        for n in pixel:
            if self._requested_threshold(n) == 'best_f1':
                t = results[n]['best_f1_threshold']
                if t == t:  # undefined without OOD or ID pixels
                    best[n] = float(t)
        components = merge_across_ranks(self._best_f1_components(best))
        components.update(merge_across_ranks(
            own['fixed'],
            lambda n: self._new_components(self._requested_threshold(n))))
        for n, acc in components.items():
            results[n].update(acc.compute())
        if get_rank() == 0:
            print_log('\n' + format_table(results), logger='current')
        self.last_results, self.last_pixel = results, pixel
        return {f'{n}/{k}': v for n, r in results.items()
                for k, v in r.items()}
