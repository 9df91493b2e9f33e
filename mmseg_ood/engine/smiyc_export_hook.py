"""Export score maps in the file layout the SMIYC benchmark reads."""
from __future__ import annotations

import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmseg.registry import HOOKS
from ..evaluation.accumulator import merge_across_ranks
from ..evaluation.report import dump_json
from ..evaluation.sampler_padding import PerSampleAccumulators
from ..evaluation.score_map_spill import ScoreMapSpill
from ..evaluation.score_transform import Float16RankTransform
from ..evaluation.streaming import StreamingOODMetric
from ..utils.arguments import strict_arguments
from ..version import __version__

TRANSFORMS = ('rank', 'none')


def smiyc_frame_id(img_path: str) -> str:
    """The benchmark's frame id: the image stem, without LostAndFound's
    ``_leftImg8bit`` suffix."""
    stem = osp.splitext(osp.basename(img_path))[0]
    return stem[:-len('_leftImg8bit')] if stem.endswith('_leftImg8bit') \
        else stem


def transform_file(out_dir: str, method: str, dataset_name: str) -> str:
    """Where the export's score transform of one method and dataset is
    recorded: next to the dataset's folder of frames."""
    return osp.join(out_dir, 'anomaly_p', method,
                    f'{dataset_name}.score_transform.json')


def _write_frame(path: str, value: np.ndarray,
                 compression: Optional[int]) -> None:
    import h5py
    os.makedirs(osp.dirname(path), exist_ok=True)
    with h5py.File(path, 'w') as f:
        if compression is None:
            f.create_dataset('value', data=value)
        else:
            f.create_dataset('value', data=value, compression='gzip',
                             compression_opts=compression, shuffle=True)


@HOOKS.register_module()
@strict_arguments
class SMIYCExportHook(Hook):
    """Writes ``<out_dir>/anomaly_p/<method>/<dataset>/<frame id>.hdf5``.

    One HDF5 file per frame and scorer, holding the dataset ``value``: the
    score map at image resolution as float16, higher = more anomalous - the
    format of the Segment-Me-If-You-Can benchmark's ``anomaly_p`` outputs.
    ``<method>`` is ``<method_prefix><scorer>``; ``<dataset>`` is the name
    under which the benchmark looks frames up (``AnomalyTrack-all``,
    ``ObstacleTrack-all``, ``LostAndFound-test``...).

    float16 holds only a few hundred distinct values of a score with a
    narrow range or far from 1, so casting the raw scores loses their
    ranking. With ``transform='rank'`` (default) each scorer's scores go
    through one :class:`~mmseg_ood.evaluation.score_transform.
    Float16RankTransform` for the whole pass: a monotone map onto the
    float16 values of [0, 1] that spends them on shares of the pixels
    (finer among the highest scores), so the metrics computed from the
    files equal those of the scores. It is fitted from the histogram of
    the pass's :class:`~mmseg_ood.evaluation.OODMetric` where it counts
    the scorer (its non-void pixels: nothing is counted twice), else from
    the hook's own histogram of every finite pixel of every frame
    (labelled or not: unlabelled test frames too). The transform is known only
    after the last frame: the maps are spilled to disk during the pass
    (:class:`~mmseg_ood.evaluation.score_map_spill.ScoreMapSpill`) and
    written at the end of the pass, each rank its own frames, with one
    transform for all ranks. It is recorded in
    ``<out_dir>/anomaly_p/<method>/<dataset>.score_transform.json``
    (:meth:`Float16RankTransform.from_dict` reads it back).
    ``transform='none'`` writes the raw scores, cast (scores beyond the
    float16 range are an error).

    Args:
        out_dir: Export root.
        dataset_name: Benchmark dataset name.
        method_prefix: Prepended to each scorer name.
        transform: ``'rank'`` or ``'none'``.
        spill_dir: Directory for the spilled maps (default: the system's
            temporary directory).
        compression: gzip level 0-9 of the files, or ``None`` (default):
            score maps hardly compress (measured on 512x1024 maps: 5-15 %
            smaller, 10x slower to write), and the benchmark reads both.

    Attributes:
        transforms: After a ``'rank'`` pass, scorer -> its transform.
    """

    priority = 'LOW'  # after the metrics' hooks; files are written last

    def __init__(self, out_dir: str, dataset_name: str,
                 method_prefix: str = '', transform: str = 'rank',
                 spill_dir: Optional[str] = None,
                 compression: Optional[int] = None):
        for arg, value in (('out_dir', out_dir),
                           ('dataset_name', dataset_name)):
            if not isinstance(value, str) or not value:
                raise ValueError(f'`{arg}` must be a non-empty str, got '
                                 f'{value!r}')
        if not isinstance(method_prefix, str):
            raise TypeError(f'`method_prefix` must be a str, got '
                            f'{method_prefix!r}')
        if transform not in TRANSFORMS:
            raise ValueError(f'`transform` must be one of {TRANSFORMS}, got '
                             f'{transform!r}')
        if compression is not None and (
                isinstance(compression, bool) or
                not isinstance(compression, int) or
                not 0 <= compression <= 9):
            raise ValueError('`compression` must be a gzip level 0-9 or '
                             f'None, got {compression!r}')
        self.compression = compression
        self.out_dir = out_dir
        self.dataset_name = dataset_name
        self.method_prefix = method_prefix
        self.transform = transform
        self.spill_dir = spill_dir
        self.transforms: Dict[str, Float16RankTransform] = {}
        self._reset()

    def _reset(self) -> None:
        spill = getattr(self, '_spill', None)
        if spill is not None:
            spill.close()
        self._spill: Optional[ScoreMapSpill] = None
        self._frames: List[Tuple[int, str]] = []  # (sample, frame id)
        # per scorer, the histogram of every pixel (a padding repeat left
        # out, see sampler_padding)
        self._samples = PerSampleAccumulators()
        self._metric = None

    def _path(self, name: str, fid: str) -> str:
        return osp.join(self.out_dir, 'anomaly_p', self.method_prefix + name,
                        self.dataset_name, f'{fid}.hdf5')

    def before_test_epoch(self, runner) -> None:
        self._reset()
        self.transforms = {}
        # the pass's OODMetric already histograms every scored (non-void)
        # pixel: the transform is fitted from that, not counted again
        metrics = getattr(getattr(getattr(runner, 'test_loop', None),
                                  'evaluator', None), 'metrics', [])
        self._metric = next((m for m in metrics
                             if type(m).__name__ == 'OODMetric'), None)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        for sample in outputs:
            fid = smiyc_frame_id(sample.img_path)
            if self.transform == 'rank':
                self._samples.start_sample()
            maps = OrderedDict()
            for name, score in sample.get('ood_scores', {}).items():
                s = score.detach().cpu().numpy().astype(np.float32,
                                                        copy=False)
                if self.transform == 'none':
                    value = s.astype(np.float16)
                    if not np.isfinite(value).all():
                        raise ValueError(
                            f'scorer {name!r}: {sample.img_path} has scores '
                            'outside the float16 range the SMIYC format '
                            "stores; export with transform='rank'")
                    _write_frame(self._path(name, fid), value,
                                 self.compression)
                    continue
                if np.isnan(s).any():
                    raise ValueError(
                        f'scorer {name!r}: {sample.img_path} has NaN scores, '
                        'which the SMIYC export cannot rank')
                if not self._metric_counts(name):
                    Float16RankTransform.observe(self._samples.get(
                        name, lambda n=name: StreamingOODMetric(name=n)), s)
                maps[name] = s
            if maps:
                if self._spill is None:
                    self._spill = ScoreMapSpill(self.spill_dir)
                key = self._samples.num_samples
                self._spill.append(key, np.zeros(0, np.uint8), maps)
                self._frames.append((key, fid))

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self.transform == 'none':
            return
        try:
            self._write_all(runner)
        finally:
            self._reset()

    def _write_all(self, runner) -> None:
        local = self._samples.finish(len(runner.test_dataloader.dataset))
        if self._samples.last_dropped:  # a repeat added by padding
            last = self._samples.num_samples
            if self._frames and self._frames[-1][0] == last:
                self._spill.drop(last)
                self._frames.pop()
        hist = merge_across_ranks(local,
                                  lambda n: StreamingOODMetric(name=n))
        pooled = getattr(self._metric, 'last_pixel', None) or {}
        for n in self._scorers_seen():
            if self._metric_counts(n):
                if n not in pooled:
                    raise RuntimeError(
                        f'SMIYCExportHook: the OODMetric of the pass has no '
                        f'histogram of {n!r}')
                hist[n] = pooled[n]
        self.transforms = OrderedDict(
            (n, Float16RankTransform.fit(h)) for n, h in hist.items())
        if get_rank() == 0:
            for n, t in self.transforms.items():
                fitted_on = (
                    "every non-void pixel of the pass (its OODMetric's "
                    'histogram)' if self._metric_counts(n) else
                    'every finite pixel of every exported frame')
                values, pos, neg = hist[n].counts_by_value()
                dump_json(t.to_dict(
                    scorer=n, method=self.method_prefix + n,
                    dataset=self.dataset_name,
                    num_pixels=int((pos + neg).sum()),
                    score_range=[float(values[0]), float(values[-1])]
                    if values.size else None,
                    fitted_on=fitted_on,
                    package_version=__version__), self._transform_path(n))
        if self._spill is not None:
            for (_, fid), (_, maps) in zip(self._frames,
                                           self._spill.read()):
                for n, s in maps.items():
                    _write_frame(self._path(n, fid), self.transforms[n](s),
                                 self.compression)

    def _metric_counts(self, name: str) -> bool:
        """Whether the pass's OODMetric histograms ``name``'s pixels (then
        the transform is fitted from its histogram)."""
        m = self._metric
        return m is not None and (m.scorers is None or name in m.scorers)

    def _scorers_seen(self) -> List[str]:
        """The scorers of the spilled maps, first-seen order."""
        return list(OrderedDict.fromkeys(
            n for _, names in (self._spill.records if self._spill else [])
            for n in names))

    def _transform_path(self, name: str) -> str:
        path = transform_file(self.out_dir, self.method_prefix + name,
                              self.dataset_name)
        os.makedirs(osp.dirname(path), exist_ok=True)
        return path
