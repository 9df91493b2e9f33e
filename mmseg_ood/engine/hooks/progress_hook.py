"""Progress of test loops: images/s and ETA, fit for a terminal and a log."""
from __future__ import annotations

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmseg.registry import HOOKS
from ...utils.arguments import strict_arguments
from ...utils.progress import Progress


@HOOKS.register_module()
@strict_arguments
class ProgressBarHook(Hook):
    """The progress over the test images (rank 0 only): the count, images
    per second, elapsed time and ETA (:class:`~mmseg_ood.utils.progress.
    Progress`). On a terminal a live bar; when the output goes to a file
    (not a terminal), a plain line every 5 seconds or every 10 % of the
    images, never a line over 200 characters.

    Args:
        title: Printed before the bar (a terminal) or at the start of each
            line (a log).
    """

    def __init__(self, title: str = ''):
        self.title = title
        self._bar = None

    def before_test_epoch(self, runner) -> None:
        if get_rank() == 0:
            self._bar = Progress(len(runner.test_dataloader.dataset),
                                 title=self.title, unit='images')

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if self._bar is not None:
            world = 1
            if hasattr(runner, 'world_size'):
                world = runner.world_size
            # the sampler pads the last batch of a distributed run
            num = min(len(outputs or ()) * world,
                      self._bar.total - self._bar.completed)
            if num > 0:
                self._bar.update(num)

    def after_test_epoch(self, runner, metrics=None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
