"""Runner hook: OOD score maps with the meta classifier's rejected segments
removed."""
from __future__ import annotations

from typing import List, Sequence, Union

import numpy as np
import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import InvalidValueError, MissingFieldError
from ...evaluation.metrics.segment_metric import threshold_name
from ...meta.classifier import MetaClassifier, load_meta_classifiers
from ...meta.segments import feature_names, image_segments
from ...utils.arguments import strict_arguments

__all__ = ['MetaClassifierHook', 'filter_score_map']


def filter_score_map(score: torch.Tensor, probs: torch.Tensor,
                     classifiers: Sequence[MetaClassifier]
                     ) -> List[torch.Tensor]:
    """One filtered copy of ``score`` ``(H, W)`` per classifier.

    The segments of ``score >= t`` (``t``: the classifier's threshold) that
    the classifier rejects (TP probability below 0.5) get the score just
    below ``t``: thresholded at ``t``, the filtered map is exactly the kept
    segments, and the order of the other pixels is unchanged.

    Args:
        score: The OOD score map the classifiers were fitted on.
        probs: Softmax probabilities ``(q, H, W)`` of the same pass.
        classifiers: Fitted classifiers, all for this score.
    """
    ts = [c.threshold for c in classifiers]
    names = feature_names(probs.shape[0])
    out = []
    for clf, segs in zip(classifiers, image_segments(probs, score, ts)):
        filtered = score.clone()
        if segs.num_segments:
            reject = ~clf.keep(clf.select(segs.features, names))
            if reject.any():
                lut = np.concatenate([[False], reject])
                mask = torch.from_numpy(lut[segs.labels]).to(score.device)
                below = torch.nextafter(
                    torch.tensor(clf.threshold, dtype=score.dtype),
                    torch.tensor(-np.inf, dtype=score.dtype))
                filtered[mask] = below.to(score.device)
        out.append(filtered)
    return out


@HOOKS.register_module()
@strict_arguments
class MetaClassifierHook(Hook):
    """Add meta-classified score maps to each test output.

    After the model's ``test_step`` (so after the ``OODScoringHook``'s
    scores exist), each data sample gets, for every classifier of the file,
    ``ood_scores['<scorer>+meta@<t>']``: the map of the classifier's scorer
    with the segments it rejects removed (:func:`filter_score_map`). OOD
    metrics then report them next to the unfiltered maps. One such hook at
    a time: put every classifier in one file.

    Args:
        meta_classifier: A meta-classifier file
            (``tools/meta_classify.py --save``) or loaded classifiers (one
            scorer).

    Example:
        >>> custom_hooks = [
        ...     dict(type='OODScoringHook', scorers=['entropy']),
        ...     dict(type='MetaClassifierHook',
        ...          meta_classifier='work_dirs/meta/meta.json')]

    References:
        Chan, Rottmann & Gottschalk, "Entropy Maximization and Meta
        Classification for Out-of-Distribution Detection in Semantic
        Segmentation", ICCV 2021, sec. 4 (removing the false-positive OOD
        segments a meta classifier finds).
    """
    priority = 'LOW'

    def __init__(self, meta_classifier: Union[str,
                                              Sequence[MetaClassifier]]):
        if isinstance(meta_classifier, str):
            self.source = meta_classifier
            meta_classifier = load_meta_classifiers(meta_classifier)
        else:
            self.source = 'meta classifier'
        self.classifiers = list(meta_classifier)
        if not self.classifiers:
            raise InvalidValueError('`meta_classifier` has no classifier')
        scorers = {c.scorer for c in self.classifiers}
        if len(scorers) > 1:
            raise InvalidValueError(
                '`meta_classifier`: the classifiers read '
                f'different scorers {sorted(scorers)}; one hook '
                'filters one scorer')
        self.scorer = scorers.pop()

    @property
    def names(self) -> List[str]:
        """The score maps it adds."""
        return [threshold_name(self.scorer, c.threshold, meta=True)
                for c in self.classifiers]

    def _filter(self, outputs):
        for sample in outputs:
            scores = sample.get('ood_scores')
            if scores is None or self.scorer not in scores:
                raise MissingFieldError(
                    f'{self.source}: the meta classifier reads '
                    f'{self.scorer!r} score maps, which this run does not '
                    f'score (it scores {sorted(scores or [])}); add '
                    f'{self.scorer!r} to the scorers')
            probs = torch.softmax(sample.seg_logits.data.float(), dim=0)
            for c in self.classifiers:
                c.check_num_classes(probs.shape[0], self.source)
            try:
                maps = filter_score_map(scores[self.scorer], probs,
                                        self.classifiers)
            except ValueError as e:
                raise InvalidValueError(f'{self.source}: {e}') from None
            for name, m in zip(self.names, maps):
                scores[name] = m
        return outputs

    @staticmethod
    def _unwrap(model, live=()) -> None:
        """Put back the ``test_step`` under the wrappers of
        MetaClassifierHooks not in ``live`` (a test that raised never
        reached ``after_test``; its hook is no longer registered)."""
        while True:
            step = vars(model).get('test_step')
            hook = getattr(step, 'meta_classifier_hook', None)
            if hook is None or any(hook is h for h in live):
                return
            if step.restore is None:
                del model.test_step
            else:
                model.test_step = step.restore

    def before_test(self, runner) -> None:
        model = runner.model
        others = [h for h in runner.hooks
                  if isinstance(h, MetaClassifierHook) and h is not self]
        self._unwrap(model, live=others)
        if hasattr(vars(model).get('test_step'), 'meta_classifier_hook'):
            raise RuntimeError('two MetaClassifierHooks are testing the same '
                               'model; put every classifier in one file')
        restore = vars(model).get('test_step')
        test_step = model.test_step

        def filtered_test_step(data):
            return self._filter(test_step(data))

        filtered_test_step.meta_classifier_hook = self
        filtered_test_step.restore = restore
        model.test_step = filtered_test_step

    def after_test(self, runner) -> None:
        self._unwrap(runner.model)
