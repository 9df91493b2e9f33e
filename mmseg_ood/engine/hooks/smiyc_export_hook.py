"""Export score maps in the file layout the SMIYC benchmark reads."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, Optional, Tuple

import numpy as np
from mmengine.hooks import Hook

from mmseg.registry import HOOKS
from ...evaluation.accumulators.base import merge_across_ranks
from ...evaluation.accumulators.pixel import PixelOODAccumulator
from ...evaluation.accumulators.score_transform import Float16RankTransform
from ...evaluation.metrics.sampler_padding import PerSampleAccumulators
from ...formats.score_map_spill import ScoreMapSpill
from ...formats.smiyc import (check_compression, fit_transforms, frame_file,
                              smiyc_frame_id, transform_file, write_frame)
from ...utils.arguments import strict_arguments

__all__ = ['SMIYCExportHook', 'smiyc_frame_id', 'transform_file',
           'TRANSFORMS']

TRANSFORMS = ('rank', 'none')


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
    through one :class:`~mmseg_ood.evaluation.accumulators.score_transform.
    Float16RankTransform` for the whole pass: a monotone map onto the
    float16 values of [0, 1] that spends them on shares of the pixels
    (finer among the highest scores), so the metrics computed from the
    files are those of the scores (measured on the demo model: within
    8.1e-5, see ``benchmarks/smiyc_export_fidelity.py``). It is fitted on
    every finite pixel of every frame, labelled or not (unlabelled test
    frames too). To export the frames an
    :class:`~mmseg_ood.evaluation.OODMetric` evaluates, its ``export=``
    option does the same without a second copy of the maps (what
    ``tools/ood_test.py`` uses). The transform is known only after the last
    frame: the maps are spilled to disk during the pass
    (:class:`~mmseg_ood.formats.score_map_spill.ScoreMapSpill`) and
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
        compression: gzip level 0-9 of the files, or ``None`` (default,
            see :func:`~mmseg_ood.formats.smiyc.
            check_compression`).

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
        self.compression = check_compression(compression)
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
        self._frames: List[Tuple[int, str]] = []  # (sample, image path)
        # per scorer, the histogram of every pixel (a padding repeat left
        # out, see sampler_padding)
        self._samples = PerSampleAccumulators()

    def _path(self, name: str, img_path: str) -> str:
        return frame_file(self.out_dir, self.method_prefix + name,
                          self.dataset_name, img_path)

    def before_test_epoch(self, runner) -> None:
        self._reset()
        self.transforms = {}

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        for sample in outputs:
            image = sample.img_path
            if self.transform == 'rank':
                self._samples.start_sample()
            maps = OrderedDict()
            for name, score in sample.get('ood_scores', {}).items():
                s = score.detach().cpu().numpy().astype(np.float32,
                                                        copy=False)
                if np.isnan(s).any():
                    raise ValueError(
                        f'scorer {name!r}: {sample.img_path} has NaN scores, '
                        'which the SMIYC export cannot rank')
                if self.transform == 'none':
                    value = s.astype(np.float16)
                    if not np.isfinite(value).all():
                        raise ValueError(
                            f'scorer {name!r}: {sample.img_path} has scores '
                            'outside the float16 range the SMIYC format '
                            "stores; export with transform='rank'")
                    write_frame(self._path(name, image), value,
                                self.compression)
                    continue
                Float16RankTransform.observe(self._samples.get(
                    name, lambda n=name: PixelOODAccumulator(name=n)), s)
                maps[name] = s
            if maps:
                if self._spill is None:
                    self._spill = ScoreMapSpill(self.spill_dir)
                key = self._samples.num_samples
                self._spill.append(key, np.zeros(0, np.uint8), maps)
                self._frames.append((key, image))

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
                                  lambda n: PixelOODAccumulator(name=n))
        self.transforms = fit_transforms(
            hist, self.out_dir, self.method_prefix, self.dataset_name,
            'every finite pixel of every exported frame')
        if self._spill is not None:
            for (_, image), (_, maps) in zip(self._frames,
                                             self._spill.read()):
                for n, s in maps.items():
                    write_frame(self._path(n, image), self.transforms[n](s),
                                self.compression)
