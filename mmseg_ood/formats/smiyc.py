"""The files of a Segment-Me-If-You-Can submission.

``<out_dir>/anomaly_p/<method>/<dataset>/<frame id>.hdf5``, dataset
``value``: a frame's score map at image resolution as float16, higher =
more anomalous; and, next to each dataset's folder, the JSON record of the
:class:`~mmseg_ood.evaluation.accumulators.score_transform.
Float16RankTransform` the scores went through
(``<dataset>.score_transform.json``). Written by
:class:`~mmseg_ood.evaluation.OODMetric` (``export=``, the frames it
evaluates) and :class:`~mmseg_ood.engine.SMIYCExportHook` (any pass).
"""
from __future__ import annotations

import os
import os.path as osp
from collections import OrderedDict
from typing import Mapping, Optional

import numpy as np
from mmengine.dist import get_rank

from ..evaluation.accumulators.pixel import PixelOODAccumulator
from ..evaluation.accumulators.score_transform import Float16RankTransform
from ..utils.files import dump_json
from ..version import __version__

__all__ = ['smiyc_frame_id', 'frame_file', 'transform_file', 'write_frame',
           'write_transform', 'fit_transforms', 'check_compression']


def smiyc_frame_id(img_path: str) -> str:
    """The benchmark's frame id: the image stem, without LostAndFound's
    ``_leftImg8bit`` suffix."""
    stem = osp.splitext(osp.basename(img_path))[0]
    return stem[:-len('_leftImg8bit')] if stem.endswith('_leftImg8bit') \
        else stem


def frame_file(out_dir: str, method: str, dataset_name: str,
               img_path: str) -> str:
    """Where a frame's map of one method is written."""
    return osp.join(out_dir, 'anomaly_p', method, dataset_name,
                    f'{smiyc_frame_id(img_path)}.hdf5')


def transform_file(out_dir: str, method: str, dataset_name: str) -> str:
    """Where the score transform of one method and dataset is recorded:
    next to the dataset's folder of frames."""
    return osp.join(out_dir, 'anomaly_p', method,
                    f'{dataset_name}.score_transform.json')


def check_compression(compression) -> Optional[int]:
    """``compression``: a gzip level 0-9 or ``None`` (uncompressed: score
    maps hardly compress, measured on 512x1024 maps 5-15 % smaller at 10x
    the write time; the benchmark reads both)."""
    if compression is not None and (
            isinstance(compression, bool) or
            not isinstance(compression, int) or not 0 <= compression <= 9):
        raise ValueError('`compression` must be a gzip level 0-9 or None, '
                         f'got {compression!r}')
    return compression


def write_frame(path: str, value: np.ndarray,
                compression: Optional[int] = None) -> None:
    """Write one frame's float16 map (dataset ``value``)."""
    import h5py
    os.makedirs(osp.dirname(path), exist_ok=True)
    with h5py.File(path, 'w') as f:
        if compression is None:
            f.create_dataset('value', data=value)
        else:
            f.create_dataset('value', data=value, compression='gzip',
                             compression_opts=compression, shuffle=True)


def write_transform(out_dir: str, method: str, dataset_name: str,
                    scorer: str, transform: Float16RankTransform,
                    histogram: PixelOODAccumulator, fitted_on: str) -> str:
    """Record ``transform`` (fitted from ``histogram``) as JSON; return the
    file."""
    values, pos, neg = histogram.counts_by_value()
    path = transform_file(out_dir, method, dataset_name)
    os.makedirs(osp.dirname(path), exist_ok=True)
    dump_json(transform.to_dict(
        scorer=scorer, method=method, dataset=dataset_name,
        num_pixels=int((pos + neg).sum()),
        score_range=[float(values[0]), float(values[-1])]
        if values.size else None,
        fitted_on=fitted_on, package_version=__version__), path)
    return path


def fit_transforms(histograms: Mapping[str, PixelOODAccumulator],
                   out_dir: str, method_prefix: str, dataset_name: str,
                   fitted_on: str) -> 'OrderedDict[str, Float16RankTransform]':
    """Each scorer's transform, fitted from its histogram (merged across
    ranks: the same on every rank), recorded by rank 0."""
    transforms = OrderedDict(
        (n, Float16RankTransform.fit(h)) for n, h in histograms.items())
    if get_rank() == 0:
        for n, t in transforms.items():
            write_transform(out_dir, method_prefix + n, dataset_name, n, t,
                            histograms[n], fitted_on)
    return transforms
