"""The flags every Runner-based tool shares, with mmseg's names."""
from __future__ import annotations

import argparse
import atexit
import functools
import logging
import os
import signal
import sys
import threading
from typing import Optional, Sequence

from mmengine.config import DictAction

__all__ = ['add_evaluation_arguments', 'add_runner_arguments',
           'add_vis_backend_argument',
           'parse_runner_args', 'model_pairs', 'exit_cleanly_on_sigterm',
           'ends_distributed_runs']

#: Set by :func:`parse_runner_args` when a launcher starts the tool.
_LAUNCHED = False


def model_pairs(parser: argparse.ArgumentParser,
                paths: Sequence[str]) -> list:
    """``[(config, checkpoint), ...]`` from the positional paths of a
    several-model tool (a parser error if they do not pair up)."""
    if len(paths) % 2:
        parser.error('the positional arguments come in CONFIG CHECKPOINT '
                     f'pairs; got {len(paths)}: {" ".join(paths)}')
    return list(zip(paths[::2], paths[1::2]))


def add_evaluation_arguments(parser: argparse.ArgumentParser,
                             datasets_note: str = '') -> None:
    """Add ``config``, ``checkpoint``, ``--work-dir`` and ``--datasets``
    (OOD dataset presets), as the OOD evaluation tools name them."""
    from mmseg_ood.datasets.presets import available_dataset_presets
    parser.add_argument('config', help='model config file (or '
                        'mmseg_ood::<path> for a config shipped with the '
                        'package)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='directory for results and logs')
    parser.add_argument('--datasets', nargs='+', default=['synthetic_ood'],
                        help='OOD dataset presets (shipped: '
                        f'{", ".join(available_dataset_presets())}) or '
                        'preset files' + datasets_note)


def add_vis_backend_argument(parser: argparse.ArgumentParser,
                             what: str = 'the results') -> None:
    """Add ``--vis-backend NAME [NAME ...]`` (repeatable; ``dest``
    ``vis_backends``, a list): mmengine visualizer backends of
    :data:`~mmseg_ood.engine.tracking.VIS_BACKENDS` that ``what`` is also
    sent through."""
    from mmseg_ood.engine.tracking import VIS_BACKENDS
    parser.add_argument(
        '--vis-backend', nargs='+', action='extend', default=[],
        dest='vis_backends', metavar='NAME', choices=sorted(VIS_BACKENDS),
        help=f"also send {what} through mmengine's visualizer backend: "
        "tensorboard or mlflow (pip install 'mmseg_ood[tracking]'), or "
        'wandb; repeatable')


def add_runner_arguments(parser: argparse.ArgumentParser,
                         unsafe_help: str = 'load the checkpoint with full '
                         'pickle; only for trusted files (unpickling can run '
                         'arbitrary code)') -> None:
    """Add ``--cfg-options``, ``--launcher``, ``--unsafe-load`` and
    ``--local-rank`` (as mmseg's ``tools/train.py`` and ``tools/test.py``
    name them)."""
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs, e.g. '
        'train_cfg.max_iters=100 or key="[a,b]"')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    parser.add_argument('--unsafe-load', action='store_true',
                        help=unsafe_help)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser,
                      argv: Optional[Sequence[str]] = None
                      ) -> argparse.Namespace:
    """Parse ``argv``; set ``LOCAL_RANK`` from ``--local-rank`` unless the
    launcher set it (as mmseg's tools do)."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    exit_cleanly_on_sigterm()
    if getattr(args, 'launcher', 'none') != 'none':
        global _LAUNCHED
        _LAUNCHED = True
        atexit.register(_destroy_process_group)
    return args


def ends_distributed_runs(main):
    """Decorate a tool's ``main(argv=None)``: when it returns under a
    launcher, the ranks meet at a barrier, tear the process group down,
    flush the logs and streams, and the worker leaves with exit status 0
    at once (``os._exit``).

    Interpreter finalization never runs in a finished worker: there,
    gloo's threads were seen to abort a worker whose work was done
    ("terminate called without an active exception", exit -6), even after
    ``destroy_process_group`` (something still held the group). A failure
    propagates as usual; without a launcher nothing changes. A rank that
    fails after the others returned leaves them at the barrier until the
    launcher stops them (torchrun does at once; otherwise gloo's timeout,
    30 minutes). Exit handlers are skipped: what must be cleaned up (score
    map spills) is closed when each pass's metrics reset."""
    @functools.wraps(main)
    def wrapper(argv=None):
        result = main(argv)
        if _LAUNCHED:
            import torch.distributed as dist
            if dist.is_available() and dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return result
    return wrapper


def _destroy_process_group() -> None:
    """Tear down the distributed process group before the interpreter
    does: left to interpreter shutdown, gloo's threads were seen to abort
    a finished torchrun worker ("terminate called without an active
    exception", exit -6)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # exiting anyway: never mask the real outcome
            pass


def _raise_system_exit(signum, frame):
    raise SystemExit(128 + signum)


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, torchrun stopping the other workers when one
    fails, a scheduler's time limit) into ``SystemExit``, as Ctrl-C is
    turned into ``KeyboardInterrupt``: ``finally`` blocks and exit handlers
    run (temporary files are removed). A handler someone else installed is
    kept."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)
