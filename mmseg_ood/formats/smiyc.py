"""The files of a Segment-Me-If-You-Can submission.

``<out_dir>/anomaly_p/<method>/<dataset>/<frame id>.hdf5``, dataset
``value``: a frame's score map at image resolution as float16, higher =
more anomalous; and, next to each dataset's folder, the JSON record of the
:class:`~mmseg_ood.evaluation.accumulators.score_transform.
Float16RankTransform` the scores went through
(``<dataset>.score_transform.json``). One pipeline writes them,
:class:`SMIYCExport` (options, NaN check, transform fit and record, frame
files), used by :class:`~mmseg_ood.evaluation.OODMetric` (``export=``, the
frames it evaluates) and :class:`~mmseg_ood.engine.SMIYCExportHook` (any
pass).
"""
from __future__ import annotations

import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Mapping, Optional

import numpy as np
from mmengine.dist import get_rank

from ..errors import InvalidTypeError, InvalidValueError
from ..evaluation.accumulators.pixel import PixelOODAccumulator
from ..evaluation.accumulators.score_transform import Float16RankTransform
from ..utils.files import dump_json
from ..version import __version__

__all__ = ['smiyc_frame_id', 'frame_file', 'transform_file', 'write_frame',
           'write_transform', 'fit_transforms', 'check_compression',
           'SMIYCExport', 'TRANSFORMS']

#: The score transforms of an export: ``'rank'`` (a
#: :class:`Float16RankTransform` fitted per scorer) or ``'none'`` (the raw
#: scores cast to float16).
TRANSFORMS = ('rank', 'none')
#: The keys of an export's options (``OODMetric(export=...)``).
_OPTION_KEYS = ('out_dir', 'dataset_name', 'method_prefix', 'compression')


def smiyc_frame_id(img_path: str) -> str:
    """The benchmark's frame id: the image stem, without LostAndFound's
    ``_leftImg8bit`` suffix.

    Args:
        img_path: The image's path (only its file name is read).

    Returns:
        str: E.g. ``'validation0000'`` for ``.../validation0000.jpg``.
    """
    stem = osp.splitext(osp.basename(img_path))[0]
    return stem[:-len('_leftImg8bit')] if stem.endswith('_leftImg8bit') \
        else stem


def frame_file(out_dir: str, method: str, dataset_name: str,
               img_path: str) -> str:
    """Where a frame's map of one method is written.

    Args:
        out_dir: Export root.
        method: The method's name (the prefix and the scorer's name).
        dataset_name: Benchmark dataset name (``'AnomalyTrack-all'``...).
        img_path: The frame's image path (:func:`smiyc_frame_id`).

    Returns:
        str: ``<out_dir>/anomaly_p/<method>/<dataset_name>/<frame id>.hdf5``.
    """
    return osp.join(out_dir, 'anomaly_p', method, dataset_name,
                    f'{smiyc_frame_id(img_path)}.hdf5')


def transform_file(out_dir: str, method: str, dataset_name: str) -> str:
    """Where the score transform of one method and dataset is recorded:
    next to the dataset's folder of frames.

    Args:
        out_dir: Export root.
        method: The method's name.
        dataset_name: Benchmark dataset name.

    Returns:
        str: ``<dataset_name>.score_transform.json`` in
        ``<out_dir>/anomaly_p/<method>/``.
    """
    return osp.join(out_dir, 'anomaly_p', method,
                    f'{dataset_name}.score_transform.json')


def check_compression(compression) -> Optional[int]:
    """``compression``: a gzip level 0-9 or ``None`` (uncompressed: score
    maps hardly compress, measured on 512x1024 maps 5-15 % smaller at 10x
    the write time; the benchmark reads both).

    Args:
        compression: The value to check.

    Returns:
        int or None: ``compression`` unchanged.

    Raises:
        ValueError: anything but an int in ``[0, 9]`` (bools rejected) or
            ``None``.
    """
    if compression is not None and (
            isinstance(compression, bool) or
            not isinstance(compression, int) or not 0 <= compression <= 9):
        raise InvalidValueError(
            '`compression` must be a gzip level 0-9 or None, '
            f'got {compression!r}')
    return compression


def write_frame(path: str, value: np.ndarray,
                compression: Optional[int] = None) -> None:
    """Write one frame's float16 map (dataset ``value``).

    Args:
        path: The HDF5 file (:func:`frame_file`); its directory is created.
        value: The ``(H, W)`` map at image resolution, float16, higher =
            more anomalous.
        compression: gzip level 0-9 (with the shuffle filter), or ``None``
            for an uncompressed dataset.
    """
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
    file.

    Args:
        out_dir: Export root.
        method: The method's name (prefix + scorer).
        dataset_name: Benchmark dataset name.
        scorer: The scorer's name, recorded in the file.
        transform: The fitted transform.
        histogram: The scorer's pooled histogram the transform was fitted
            from; its pixel count and score range are recorded.
        fitted_on: Which pixels the histogram holds, in words (e.g.
            ``'every non-void pixel of the evaluated frames'``).

    Returns:
        str: The path of the JSON file (:func:`transform_file`).
    """
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
    ranks: the same on every rank), recorded by rank 0.

    Args:
        histograms: ``{scorer name: PixelOODAccumulator}``, merged across
            ranks.
        out_dir: Export root.
        method_prefix: Prepended to each scorer name to make the method's
            name.
        dataset_name: Benchmark dataset name.
        fitted_on: Which pixels the histograms hold, in words
            (:func:`write_transform`).

    Returns:
        OrderedDict: ``{scorer name: Float16RankTransform}``.
    """
    transforms = OrderedDict(
        (n, Float16RankTransform.fit(h)) for n, h in histograms.items())
    if get_rank() == 0:
        for n, t in transforms.items():
            write_transform(out_dir, method_prefix + n, dataset_name, n, t,
                            histograms[n], fitted_on)
    return transforms


class SMIYCExport:
    """One SMIYC export: its options, its transforms and its files.

    The pipeline both :class:`~mmseg_ood.evaluation.OODMetric` (``export=``)
    and :class:`~mmseg_ood.engine.SMIYCExportHook` run: :meth:`check_map`
    each frame's maps as they come (NaN cannot be ranked), :meth:`fit` one
    :class:`Float16RankTransform` per scorer from its pooled histogram once
    the pass is over (recorded as JSON by rank 0), then :meth:`write` each
    frame through it (``<out_dir>/anomaly_p/<method_prefix><scorer>/
    <dataset_name>/<frame id>.hdf5``, :func:`frame_file`). With
    ``transform='none'`` nothing is fitted: :meth:`write` casts the raw
    scores to float16 (scores beyond its range are an error) and a frame
    can be written as soon as it is seen.

    Args:
        out_dir: Export root.
        dataset_name: Benchmark dataset name (``'AnomalyTrack-all'``...).
        method_prefix: Prepended to each scorer name.
        compression: gzip level 0-9 of the files, or ``None`` (see
            :func:`check_compression`).
        transform: ``'rank'`` or ``'none'``.

    Attributes:
        transforms: After :meth:`fit`, scorer -> its transform.
    """

    def __init__(self, out_dir: str, dataset_name: str,
                 method_prefix: str = '', compression: Optional[int] = None,
                 transform: str = 'rank'):
        for arg, value in (('out_dir', out_dir),
                           ('dataset_name', dataset_name)):
            if not isinstance(value, str) or not value:
                raise InvalidValueError(
                    f'`{arg}` must be a non-empty str, got '
                    f'{value!r}')
        if not isinstance(method_prefix, str):
            raise InvalidTypeError(f'`method_prefix` must be a str, got '
                                   f'{method_prefix!r}')
        if transform not in TRANSFORMS:
            raise InvalidValueError(
                f'`transform` must be one of {TRANSFORMS}, got '
                f'{transform!r}')
        self.compression = check_compression(compression)
        self.out_dir = out_dir
        self.dataset_name = dataset_name
        self.method_prefix = method_prefix
        self.transform = transform
        self.transforms: Dict[str, Float16RankTransform] = OrderedDict()

    @classmethod
    def from_options(cls, options: Optional[dict]) -> Optional['SMIYCExport']:
        """The export of ``OODMetric(export=options)``: ``None``, or a dict
        of ``out_dir``, ``dataset_name`` (both required), ``method_prefix``
        and ``compression``; always ``transform='rank'``.

        Raises:
            TypeError: ``options`` is not a dict, or ``method_prefix`` not a
                str.
            ValueError: an unknown key, a missing or empty ``out_dir`` /
                ``dataset_name``, or a bad ``compression``.
        """
        if options is None:
            return None
        if not isinstance(options, dict):
            raise InvalidTypeError('`export` must be a dict or None, got '
                                   f'{options!r}')
        unknown = set(options) - set(_OPTION_KEYS)
        if unknown:
            raise InvalidValueError(
                f'`export` has unknown keys {sorted(unknown)}; '
                f'it takes {", ".join(_OPTION_KEYS)}')
        for key in ('out_dir', 'dataset_name'):
            if not isinstance(options.get(key), str) or not options[key]:
                raise InvalidValueError(
                    f'`export` needs a non-empty str {key!r}, '
                    f'got {options.get(key)!r}')
        if not isinstance(options.get('method_prefix', ''), str):
            raise InvalidTypeError('`export` method_prefix must be a str, got '
                                   f'{options["method_prefix"]!r}')
        return cls(**options)

    def options(self) -> dict:
        """The options :meth:`from_options` takes, defaults filled in."""
        return dict(out_dir=self.out_dir, dataset_name=self.dataset_name,
                    method_prefix=self.method_prefix,
                    compression=self.compression)

    @property
    def needs_fit(self) -> bool:
        """Whether frames wait for :meth:`fit` (``transform='rank'``)."""
        return self.transform == 'rank'

    def frame_path(self, name: str, img_path: str) -> str:
        """Where the frame of ``img_path`` is written for scorer ``name``."""
        return frame_file(self.out_dir, self.method_prefix + name,
                          self.dataset_name, img_path)

    def check_map(self, name: str, score_map: np.ndarray, image) -> None:
        """Raise ``ValueError`` if scorer ``name``'s map of ``image`` holds
        NaN (void pixels too: every pixel is exported)."""
        if np.isnan(score_map).any():
            raise InvalidValueError(
                f'scorer {name!r}: {image} has NaN scores, '
                'which the SMIYC export cannot rank')

    def fit(self, histograms: Mapping[str, PixelOODAccumulator],
            fitted_on: str) -> 'OrderedDict[str, Float16RankTransform]':
        """Fit :attr:`transforms` from each scorer's histogram (merged across
        ranks: the same on every rank; rank 0 records them, saying they
        were ``fitted_on`` what) and return them."""
        self.transforms = fit_transforms(histograms, self.out_dir,
                                         self.method_prefix,
                                         self.dataset_name, fitted_on)
        return self.transforms

    def write(self, name: str, image: str, score_map: np.ndarray) -> None:
        """Write scorer ``name``'s frame of ``image``: through its fitted
        transform, or (``transform='none'``) cast to float16.

        Raises:
            ValueError: a cast score is beyond the float16 range.
        """
        if self.transform == 'none':
            value = np.asarray(score_map, np.float32).astype(np.float16)
            if not np.isfinite(value).all():
                raise InvalidValueError(
                    f'scorer {name!r}: {image} has scores outside the '
                    'float16 range the SMIYC format stores; export with '
                    "transform='rank'")
        else:
            value = self.transforms[name](score_map)
        write_frame(self.frame_path(name, image), value, self.compression)
