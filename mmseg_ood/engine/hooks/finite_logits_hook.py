"""Stop a test run whose model outputs NaN or Inf logits."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import InvalidValueError
from ...utils.arguments import strict_arguments


@HOOKS.register_module()
@strict_arguments
class FiniteLogitsHook(Hook):
    """Raise on non-finite ``seg_logits`` in the test (and val) outputs.

    NaN weights (a diverged training, a broken conversion) make every
    logit NaN; argmax then predicts class 0 everywhere and mmseg reports a
    low but plausible mIoU. This hook fails the run instead, naming the
    image.

    Args:
        val: Check validation outputs too.
    """
    priority = 'HIGH'  # before the hooks that write outputs

    def __init__(self, val: bool = False):
        self.val = val

    @staticmethod
    def check(outputs: Optional[Sequence]) -> None:
        """Raise ``ValueError`` if a sample's ``seg_logits`` has NaN/Inf."""
        for sample in outputs or ():
            logits = getattr(sample, 'seg_logits', None)
            if logits is None:
                continue
            data = logits.data if hasattr(logits, 'data') else logits
            if not torch.isfinite(data).all():
                bad = int((~torch.isfinite(data)).sum())
                raise InvalidValueError(
                    f'the model output {bad} non-finite (NaN/Inf) logits of '
                    f'{data.numel()} for image '
                    f"{sample.metainfo.get('img_path')}: are the "
                    "checkpoint's weights finite?")

    def after_test_iter(self, runner, batch_idx: int, data_batch=None,
                        outputs: Optional[Sequence] = None) -> None:
        self.check(outputs)

    def after_val_iter(self, runner, batch_idx: int, data_batch=None,
                       outputs: Optional[Sequence] = None) -> None:
        if self.val:
            self.check(outputs)
