"""Export score maps in the file layout the SMIYC benchmark reads."""
from __future__ import annotations

import os
import os.path as osp

import numpy as np
from mmengine.hooks import Hook

from mmseg.registry import HOOKS

from ..utils.arguments import strict_arguments


def smiyc_frame_id(img_path: str) -> str:
    """The benchmark's frame id: the image stem, without LostAndFound's
    ``_leftImg8bit`` suffix."""
    stem = osp.splitext(osp.basename(img_path))[0]
    return stem[:-len('_leftImg8bit')] if stem.endswith('_leftImg8bit') \
        else stem


@HOOKS.register_module()
@strict_arguments
class SMIYCExportHook(Hook):
    """Writes ``<out_dir>/anomaly_p/<method>/<dataset>/<frame id>.hdf5``.

    One HDF5 file per frame and scorer, holding the dataset ``value``: the
    score map at image resolution as float16, higher = more anomalous - the
    format of the Segment-Me-If-You-Can benchmark's ``anomaly_p`` outputs.
    ``<method>`` is ``<method_prefix><scorer>``; ``<dataset>`` is the name
    under which the benchmark looks frames up (``AnomalyTrack-all``,
    ``ObstacleTrack-all``, ``LostAndFound-test``...). Every rank writes its
    own frames.

    Args:
        out_dir: Export root.
        dataset_name: Benchmark dataset name.
        method_prefix: Prepended to each scorer name.
    """

    def __init__(self, out_dir: str, dataset_name: str,
                 method_prefix: str = ''):
        for arg, value in (('out_dir', out_dir),
                           ('dataset_name', dataset_name)):
            if not isinstance(value, str) or not value:
                raise ValueError(f'`{arg}` must be a non-empty str, got '
                                 f'{value!r}')
        if not isinstance(method_prefix, str):
            raise TypeError(f'`method_prefix` must be a str, got '
                            f'{method_prefix!r}')
        self.out_dir = out_dir
        self.dataset_name = dataset_name
        self.method_prefix = method_prefix

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        import h5py
        for sample in outputs:
            fid = smiyc_frame_id(sample.img_path)
            for name, score in sample.get('ood_scores', {}).items():
                d = osp.join(self.out_dir, 'anomaly_p',
                             self.method_prefix + name, self.dataset_name)
                os.makedirs(d, exist_ok=True)
                value = score.cpu().numpy().astype(np.float16)
                if not np.isfinite(value).all():
                    raise ValueError(
                        f'scorer {name!r}: {sample.img_path} has scores '
                        'outside the float16 range the SMIYC format stores')
                with h5py.File(osp.join(d, f'{fid}.hdf5'), 'w') as f:
                    f.create_dataset('value', data=value, compression=9)
