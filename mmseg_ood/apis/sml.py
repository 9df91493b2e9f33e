"""Fit the statistics of the standardized max logit (SML) on ID data.

SML (thesis eq. 3.4) standardizes the max logit with the mean and standard
deviation of the max logit of each predicted class on in-distribution data.
:func:`fit_sml` runs one evaluation pass over the config's own training or
validation images (the model's test pipeline, no augmentation) and
accumulates those statistics exactly, from the logits where every scorer
reads them (the decode head's output, before resizing), merged across
ranks. :func:`sml_scorer` adds the caching the tools use: statistics are
written to the work dir with what they were fitted on and reused while the
checkpoint, config and split stay the same.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ..engine.evaluation_session import EvaluationSession
from ..errors import InvalidValueError
from ..evaluation import merge_across_ranks
from ..evaluation.metrics.sampler_padding import PerSampleAccumulators
from ..scorers import BaseScorer, ScoreInputs, StandardizedMaxLogit
from ..utils import file_sha256

__all__ = ['fit_sml', 'sml_scorer', 'id_dataset', 'SML_SPLITS']

#: The ID splits SML can be fitted on (the config's train or val set).
SML_SPLITS = ('train', 'val')


class _LogitRecorder(BaseScorer):
    """Feeds the logits it is given to an SML fit, image by image; scores
    zeros.

    Each test iteration (one image: the pass's batch size is 1; with TTA,
    every view of it) is a sample of :attr:`samples`, so that a padding
    repeat of distributed sampling is left out of the fit.
    """
    name = '_sml_fit'

    def __init__(self):
        self.samples = PerSampleAccumulators()
        recorder = self

        class SampleBoundaries(Hook):
            def before_test_iter(self, runner, batch_idx, data_batch=None):
                recorder.samples.start_sample()

        self.boundaries = SampleBoundaries()

    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        self.samples.get('sml', StandardizedMaxLogit).partial_fit(
            inputs.logits)
        return inputs.logits.new_zeros(inputs.logits[:, 0].shape)


def id_dataset(cfg, split: str) -> dict:
    """The config's ``split`` dataset (``train`` or ``val``), to be read with
    the test pipeline.

    Args:
        cfg: The loaded model config (``mmengine.Config``); its
            ``<split>_dataloader.dataset`` is read (through wrappers such as
            ``RepeatDataset``).
        split: ``'train'`` or ``'val'``.

    Returns:
        dict: The dataset config without its ``pipeline`` (the evaluation
        session supplies the test pipeline).

    Raises:
        ValueError: unknown split, or a training set wrapped in a dataset
            type this function cannot see through.
    """
    if split not in SML_SPLITS:
        raise InvalidValueError(f'`split` must be one of {SML_SPLITS}, got '
                                f'{split!r}')
    loader = cfg.get(f'{split}_dataloader')
    if loader is None:
        raise InvalidValueError(
            f'the config has no {split}_dataloader to fit SML on')
    dataset = loader.dataset.to_dict() if hasattr(
        loader.dataset, 'to_dict') else dict(loader.dataset)
    while 'pipeline' not in dataset and isinstance(dataset.get('dataset'),
                                                   dict):
        dataset = dict(dataset['dataset'])  # RepeatDataset and the like
    if 'pipeline' not in dataset:
        raise InvalidValueError(
            f"cannot fit SML on the {split} set: its dataset "
            f"({dataset.get('type')}) has no pipeline of its own; fit on the "
            "other split or pass fitted statistics (`stats_file`)")
    dataset.pop('pipeline')  # the session uses the test pipeline
    return dataset


def fit_sml(session: EvaluationSession, split: str = 'train',
            max_images: Optional[int] = None) -> StandardizedMaxLogit:
    """SML statistics of the session's model on the config's ID ``split``.

    Args:
        session: The model.
        split: ``'train'`` (as Jung et al.) or ``'val'``.
        max_images: Use only the first images (``indices`` of the dataset).

    Returns:
        StandardizedMaxLogit: fitted, the same on every rank.
    """
    dataset = id_dataset(session.cfg, split)
    if max_images is not None:
        dataset['indices'] = int(max_images)
    recorder = _LogitRecorder()
    done = session.run_pass(dataset, name=f'sml_fit_{split}',
                            scorers={'_sml_fit': recorder}, metrics=[],
                            hooks=[recorder.boundaries])
    merged = merge_across_ranks(recorder.samples.finish(done.size),
                                lambda _: StandardizedMaxLogit())
    if 'sml' not in merged:
        raise RuntimeError(f'SML fit: no images in the {split} set')
    return merged['sml']


def sml_scorer(session: EvaluationSession, stats_file: Optional[str] = None,
               split: str = 'train',
               cache_dir: Optional[str] = None) -> StandardizedMaxLogit:
    """An ``sml`` scorer with fitted statistics.

    With ``stats_file``, its statistics are used as they are. Otherwise
    they are fitted on the ID ``split`` (:func:`fit_sml`) and cached in
    ``cache_dir/sml_statistics_<split>.json`` (default: the session's work
    dir) with the checkpoint's SHA-256, the config and the split; a later
    call reuses the file while all three match.

    Args:
        session: The model (config, checkpoint, work dir) whose logits are
            standardized.
        stats_file: A JSON file of fitted per-class means and standard
            deviations (written by ``StandardizedMaxLogit.save``); default:
            fit them (or reuse the cache).
        split: The ID split fitted on, ``'train'`` (as Jung et al.) or
            ``'val'``; ignored with ``stats_file``.
        cache_dir: Folder of the cached statistics; default: the session's
            work dir.

    Returns:
        StandardizedMaxLogit: The scorer (Jung et al. 2021, eq. 1), with
        the same statistics on every rank.

    References:
        Jung, Lee, Gwak, Choi & Choo, "Standardized Max Logits: A Simple yet
        Effective Approach for Identifying Unexpected Road Obstacles in
        Urban-Scene Segmentation", ICCV 2021, eq. 1.
    """
    if stats_file is not None:
        return StandardizedMaxLogit(stats_file=stats_file)
    if split not in SML_SPLITS:
        raise InvalidValueError(f'`split` must be one of {SML_SPLITS}, got '
                                f'{split!r}')
    cache_dir = cache_dir or session.work_dir
    path = osp.join(cache_dir, f'sml_statistics_{split}.json')
    meta = dict(checkpoint_sha256=file_sha256(session.checkpoint),
                config=osp.abspath(session.config), split=split)
    if osp.isfile(path):
        cached = StandardizedMaxLogit(stats_file=path)
        if all(cached.meta.get(k) == v for k, v in meta.items()):
            print_log(f'SML: reusing the statistics in {path}',
                      logger='current')
            return cached
        print_log(f'SML: {path} was fitted on another checkpoint, config or '
                  'split; fitting again', logger='current')
    sml = fit_sml(session, split)
    if get_rank() == 0:
        os.makedirs(cache_dir, exist_ok=True)
        sml.save(path, meta=dict(meta, checkpoint=osp.abspath(
            session.checkpoint)))
        print_log(f'SML: statistics of the {split} set saved to {path}',
                  logger='current')
    return sml
