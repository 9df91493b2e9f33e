"""mmengine's ``LoggerHook`` with one writer of the test metrics file, in
plain numbers."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
from mmengine.dist import get_rank
from mmengine.hooks import LoggerHook

from mmseg.registry import HOOKS
from ...utils.arguments import strict_arguments


@HOOKS.register_module()
@strict_arguments
class RankZeroLoggerHook(LoggerHook):
    """``LoggerHook`` whose ``after_test_epoch`` runs on rank 0 only.

    mmengine's hook dumps the test metrics to
    ``<log_dir>/<timestamp>.json`` on every rank; the ranks share the log
    dir, so in a distributed test they write the same file at once and it
    can come out corrupted (two JSON objects run together). The metrics are
    the same on every rank, so rank 0 writes them alone.

    mmengine's hook also writes every value that is not a plain Python
    number as ``null``: a count logged through the message hub comes back
    as a ``numpy.int64`` (its history is a numpy array), so ``OODMetric``'s
    ``num_ood`` was ``null`` in the file. Here numpy scalars are written as
    the numbers they hold. The package's Runners use this hook in place of
    ``LoggerHook``.

    Args:
        interval: Logging interval, in iterations.
        ignore_last: Skip the log of the last iterations of an epoch when
            fewer than ``interval`` remain.
        interval_exp_name: Interval of printing the experiment name.
        out_dir: Root to copy the logs to (default: keep them in the work
            dir only).
        out_suffix: Suffixes of the log files copied to ``out_dir``.
        keep_local: Keep the local logs when ``out_dir`` is set.
        file_client_args: Deprecated in mmengine; use ``backend_args``.
        log_metric_by_epoch: Log validation metrics by epoch (else by
            iteration).
        backend_args: Arguments of the file backend (mmengine ``fileio``).

    All as mmengine's ``LoggerHook``.
    """

    def after_test_epoch(self, runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        if get_rank() == 0:
            super().after_test_epoch(runner, metrics)

    @staticmethod
    def _process_tags(tags: dict):
        """mmengine's conversion of the tags to JSON values, numpy scalars
        (anywhere in the tags) as Python numbers first."""
        return LoggerHook._process_tags(_plain(tags))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
