"""Runner hook: attach OOD scorers to the model for val / test."""
from __future__ import annotations

from typing import Optional

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.models import SegTTAModel
from mmseg.registry import HOOKS

from ...errors import InvalidValueError
from ...evaluation import OODMetric
from ...models import OODScoring, OODSegTTAModel, build_scorers
from ...utils.arguments import strict_arguments


@HOOKS.register_module()
@strict_arguments
class OODScoringHook(Hook):
    """Fill ``data_sample.ood_scores`` during validation and/or testing.

    The scorers are built at construction, so an unknown name or argument
    fails when the config is built, not once testing starts.

    Args:
        scorers: Scorer names or config dicts (see
            :class:`mmseg_ood.models.OODScoring`).
        strict: Raise if a scorer cannot run on the model (else skip it with
            a warning).
        val: Score during validation too (not only testing).

    It also points the loop's OOD metrics
    (:class:`~mmseg_ood.evaluation.OODMetric`) without a ``spill_dir`` at
    the work dir.

    Example:
        >>> custom_hooks = [dict(type='OODScoringHook',
        ...                      scorers=['msp', 'energy', 'n_energy'])]
    """
    priority = 'NORMAL'

    def __init__(self, scorers, strict: bool = True, val: bool = False):
        self.scorers = build_scorers(scorers)
        self.strict = strict
        self.val = val
        self._scoring: Optional[OODScoring] = None

    @staticmethod
    def _spill_to_work_dir(loop) -> None:
        """Let the loop's OOD metrics spill score maps under the work dir
        (where a killed run leaves them, and the next run removes them)
        unless they were told where."""
        for metric in getattr(getattr(loop, 'evaluator', None), 'metrics',
                              ()):
            if isinstance(metric, OODMetric) and metric.spill_dir is None:
                metric.spill_dir = loop.runner.work_dir

    def _attach(self, runner, loop) -> None:
        self._spill_to_work_dir(loop)
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        if isinstance(model, SegTTAModel) and not isinstance(
                model, OODSegTTAModel):
            raise InvalidValueError(
                'OODScoringHook with test-time augmentation needs '
                "tta_model = dict(type='OODSegTTAModel'); mmseg's "
                'SegTTAModel drops the OOD scores when merging')
        self._scoring = OODScoring(model, self.scorers, strict=self.strict)
        self._scoring.attach()

    def _detach(self) -> None:
        if self._scoring is not None:
            self._scoring.detach()
            self._scoring = None

    def before_test(self, runner) -> None:
        self._attach(runner, runner.test_loop)

    def after_test(self, runner) -> None:
        self._detach()

    def before_val(self, runner) -> None:
        if self.val:
            self._attach(runner, runner.val_loop)

    def after_val(self, runner) -> None:
        self._detach()
