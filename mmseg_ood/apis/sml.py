"""Fit the statistics of the standardized max logit (SML) on ID data.

SML (thesis eq. 3.4) standardizes the max logit with the mean and standard
deviation of the max logit of each predicted class on in-distribution data.
:func:`fit_sml` runs one evaluation pass over the config's own training or
validation images (the model's test pipeline, no augmentation) and
accumulates those statistics exactly, from the logits where every scorer
reads them (the decode head's output, before resizing), merged across
ranks (the shared fitting pass of :mod:`mmseg_ood.apis.fit_on_id`).
:func:`sml_scorer` adds the caching the tools use: statistics are
written to the work dir with what they were fitted on and reused while the
checkpoint, config and split stay the same.
"""
from __future__ import annotations

from typing import Optional

from ..engine.evaluation_session import EvaluationSession
from ..errors import InvalidValueError
from ..scorers import StandardizedMaxLogit
from .fit_on_id import FIT_SPLITS, fit_on_id, fitted_scorers, id_dataset

__all__ = ['fit_sml', 'sml_scorer', 'id_dataset', 'SML_SPLITS']

#: The ID splits SML can be fitted on (the config's train or val set).
SML_SPLITS = FIT_SPLITS


def fit_sml(session: EvaluationSession, split: str = 'train',
            max_images: Optional[int] = None) -> StandardizedMaxLogit:
    """SML statistics of the session's model on the config's ID ``split``
    (one pass of :func:`~mmseg_ood.apis.fit_on_id.fit_on_id`).

    Args:
        session: The model.
        split: ``'train'`` (as Jung et al.) or ``'val'``.
        max_images: Use only the first images (``indices`` of the dataset).

    Returns:
        StandardizedMaxLogit: fitted, the same on every rank.
    """
    return fit_on_id(session, dict(sml=StandardizedMaxLogit), split,
                     max_images)['sml']


def sml_scorer(session: EvaluationSession, stats_file: Optional[str] = None,
               split: str = 'train',
               cache_dir: Optional[str] = None) -> StandardizedMaxLogit:
    """An ``sml`` scorer with fitted statistics.

    With ``stats_file``, its statistics are used as they are. Otherwise
    they are fitted on the ID ``split`` (:func:`fit_sml`) and cached in
    ``cache_dir/sml_statistics_<split>.json`` (default: the session's work
    dir) with the checkpoint's SHA-256, the config and the split; a later
    call reuses the file while all three match
    (:func:`~mmseg_ood.apis.fit_on_id.fitted_scorers`).

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
    (fitted, ), _ = fitted_scorers(session, ['sml'], split, cache_dir)
    return fitted[1]
