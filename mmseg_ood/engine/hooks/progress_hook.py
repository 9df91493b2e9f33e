"""A progress bar for test loops: images/s and ETA."""
from __future__ import annotations

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar

from mmseg.registry import HOOKS
from ...utils.arguments import strict_arguments


@HOOKS.register_module()
@strict_arguments
class ProgressBarHook(Hook):
    """mmengine's ``ProgressBar`` over the test images (rank 0 only): shows
    the count, images per second, elapsed time and ETA.

    Args:
        title: Printed before the bar.
    """

    def __init__(self, title: str = ''):
        self.title = title
        self._bar = None

    def before_test_epoch(self, runner) -> None:
        if get_rank() == 0:
            if self.title:
                print(self.title, flush=True)
            self._bar = ProgressBar(len(runner.test_dataloader.dataset))

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if self._bar is not None:
            world = 1
            if hasattr(runner, 'world_size'):
                world = runner.world_size
            for _ in range(len(outputs or ()) * world):
                if self._bar.completed < self._bar.task_num:
                    self._bar.update()

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self._bar is not None:
            print(flush=True)
            self._bar = None
