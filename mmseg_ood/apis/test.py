"""Test a checkpoint with the Runner, as mmseg's ``tools/test.py`` does,
plus safe checkpoint loading and readable unknown-type errors."""
from __future__ import annotations

from typing import Optional

from ..datasets import check_dataset_files
from ..deprecation import package_getattr
from ..engine import FiniteLogitsHook
from ..engine.runner import build_runner as _build_runner
from ..engine.runner import enable_tta as _enable_tta
from ..engine.runner import enable_visualization as _enable_visualization
from ..models import unwrap_segmentor
from ..utils import (check_checkpoint_fits, explain_unknown_types,
                     load_checkpoint_file, load_config,
                     safe_checkpoint_loading)

__getattr__ = package_getattr(__name__)  # names moved to lower layers


def test(config: str,
         checkpoint: str,
         work_dir: Optional[str] = None,
         out: Optional[str] = None,
         show: bool = False,
         show_dir: Optional[str] = None,
         wait_time: float = 2,
         tta: bool = False,
         cfg_options: Optional[dict] = None,
         launcher: str = 'none',
         unsafe_load: bool = False) -> dict:
    """Evaluate ``checkpoint`` on the config's test set; return the metrics.

    Stricter than mmseg's ``tools/test.py``: a checkpoint that does not fit
    the config's model (missing / unexpected keys, shapes) and non-finite
    logits (:class:`~mmseg_ood.engine.FiniteLogitsHook`) are errors, and
    the test set's files are checked first
    (:func:`~mmseg_ood.datasets.check_dataset_files`).

    Args:
        config: Path of an mmseg config.
        checkpoint: Checkpoint file (loaded safely unless ``unsafe_load``).
        work_dir: Where the metrics JSON and logs go.
        out: Directory for the predictions (``test_evaluator.output_dir``).
        show / show_dir / wait_time: Visualization, as in mmseg.
        tta: Test-time augmentation with ``tta_pipeline`` / ``tta_model``.
        cfg_options: Overrides merged into the config.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
        unsafe_load: Load the checkpoint with full pickle (trusted files only).
    """
    cfg = load_config(config, cfg_options, work_dir, launcher)
    cfg.load_from = checkpoint
    if show or show_dir:
        _enable_visualization(cfg, show, show_dir, wait_time)
    if tta:
        _enable_tta(cfg)
    if out is not None:
        cfg.test_evaluator['output_dir'] = out
        cfg.test_evaluator['keep_results'] = True
    # read and checked here (names and shapes, naming both files), loaded
    # by the Runner as mmseg's tools/test.py does
    ckpt = load_checkpoint_file(checkpoint, unsafe=unsafe_load)
    check_dataset_files(cfg.test_dataloader.dataset, "the config's test set")
    runner = _build_runner(cfg)
    check_checkpoint_fits(unwrap_segmentor(runner.model), ckpt, checkpoint,
                          config)
    del ckpt
    runner.register_hook(FiniteLogitsHook())
    with safe_checkpoint_loading(unsafe_load), explain_unknown_types():
        return runner.test()
