"""Export score maps in the file layout the SMIYC benchmark reads."""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Optional

import numpy as np
from mmengine.hooks import Hook

from mmseg.registry import HOOKS
from ...evaluation.accumulators.base import merge_across_ranks
from ...evaluation.accumulators.pixel import PixelOODAccumulator
from ...evaluation.accumulators.score_transform import Float16RankTransform
from ...evaluation.metrics.sampler_padding import PerSampleAccumulators
from ...formats.score_map_spill import ScoreMapSpill
from ...formats.smiyc import (TRANSFORMS, SMIYCExport, smiyc_frame_id,
                              transform_file)
from ...utils.arguments import strict_arguments

__all__ = ['SMIYCExportHook', 'smiyc_frame_id', 'transform_file',
           'TRANSFORMS']


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
    transform for all ranks (the pipeline is :class:`~mmseg_ood.formats.
    smiyc.SMIYCExport`, the same as ``OODMetric``'s). It is recorded in
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
        export: The :class:`~mmseg_ood.formats.smiyc.SMIYCExport` of the
            arguments (``out_dir``, ``dataset_name``, ``method_prefix``,
            ``transform`` and ``compression`` read from it).
        transforms: After a ``'rank'`` pass, scorer -> its transform.
    """

    priority = 'LOW'  # after the metrics' hooks; files are written last

    def __init__(self, out_dir: str, dataset_name: str,
                 method_prefix: str = '', transform: str = 'rank',
                 spill_dir: Optional[str] = None,
                 compression: Optional[int] = None):
        self.export = SMIYCExport(out_dir, dataset_name,
                                  method_prefix=method_prefix,
                                  compression=compression,
                                  transform=transform)
        self.spill_dir = spill_dir
        self.transforms: Dict[str, Float16RankTransform] = {}
        self._reset()

    out_dir = property(lambda self: self.export.out_dir)
    dataset_name = property(lambda self: self.export.dataset_name)
    method_prefix = property(lambda self: self.export.method_prefix)
    transform = property(lambda self: self.export.transform)
    compression = property(lambda self: self.export.compression)

    def _reset(self) -> None:
        spill = getattr(self, '_spill', None)
        if spill is not None:
            spill.close()
        # each frame's maps, tagged with its image path
        self._spill: Optional[ScoreMapSpill] = None
        # per scorer, the histogram of every pixel (a padding repeat left
        # out, see sampler_padding)
        self._samples = PerSampleAccumulators()

    def before_test_epoch(self, runner) -> None:
        self._reset()
        self.transforms = {}

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        export = self.export
        for sample in outputs:
            image = sample.img_path
            if export.needs_fit:
                self._samples.start_sample()
            maps = OrderedDict()
            for name, score in sample.get('ood_scores', {}).items():
                s = score.detach().cpu().numpy().astype(np.float32,
                                                        copy=False)
                export.check_map(name, s, image)
                if not export.needs_fit:  # no transform to wait for
                    export.write(name, image, s)
                    continue
                Float16RankTransform.observe(self._samples.get(
                    name, lambda n=name: PixelOODAccumulator(name=n)), s)
                maps[name] = s
            if maps:
                if self._spill is None:
                    self._spill = ScoreMapSpill(self.spill_dir)
                self._spill.append(self._samples.num_samples,
                                   np.zeros(0, np.uint8), maps, tag=image)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if not self.export.needs_fit:
            return
        try:
            self._write_all(runner)
        finally:
            self._reset()

    def _write_all(self, runner) -> None:
        local = self._samples.finish(len(runner.test_dataloader.dataset))
        if self._spill is not None and self._samples.last_dropped:
            self._spill.drop(self._samples.num_samples)  # a padding repeat
        hist = merge_across_ranks(local,
                                  lambda n: PixelOODAccumulator(name=n))
        self.transforms = self.export.fit(
            hist, 'every finite pixel of every exported frame')
        if self._spill is not None:
            for image, _, maps in self._spill.read_tagged():
                for n, s in maps.items():
                    self.export.write(n, image, s)
