"""Attach OOD scorers to any mmseg segmentor: one forward pass, every score.

How it works (and why the maps line up with ``pred_sem_seg``): for heads
that end in a linear classifier, the final decode head's ``predict_by_feat``
(which mmseg heads call with their logits ``s`` before any resizing; a
forward hook cannot be used since ``predict`` calls ``self.forward``
directly) is wrapped for the duration of the attachment: it computes every
score at the head's resolution from ``s`` and the embeddings ``z`` captured
by a forward hook on ``conv_seg``, and appends the K score maps to the
logits as extra channels. mmseg itself then treats them exactly like
the logits - resize to the input, slide-window stitching (the segmentor's
``out_channels`` is raised by K meanwhile), padding removal, un-flipping,
resize to ``ori_shape``. A forward hook on the segmentor splits the channels
again, restores ``seg_logits`` / ``pred_sem_seg`` and stores
``data_sample.ood_scores = {name: Tensor (H, W)}``.

Heads without a linear classifier (MaskFormer, Mask2Former) are scored from
their final ``seg_logits`` at ``ori_shape``; only logit scorers apply.

Cost: the scorers run on ``(N, C, h, w)`` at the head's resolution (1/4 or
1/8 of the input for most heads); the extra channels add K/C to the resize
and stitching work.
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Iterable, Mapping, Union

import torch
import torch.nn as nn
from mmengine.structures import PixelData

from ..scorers import (BaseScorer, ScoreInputs, UnsupportedScorerError,
                       build_scorer)
from .embedding_capture import (EmbeddingCapture, final_classifier,
                                final_decode_head, head_kind,
                                unwrap_segmentor)

ScorerSpec = Union[str, dict, BaseScorer]


def build_scorers(scorers: Union[Iterable[ScorerSpec], Mapping[str,
                                                                 ScorerSpec]]
                  ) -> 'OrderedDict[str, BaseScorer]':
    """Named scorers from names, config dicts, instances or a name->spec map.

    Names default to the registry name; a config dict may set ``name`` to
    evaluate one scorer with several parameter sets.
    """
    items = scorers.items() if isinstance(scorers, Mapping) else [
        (None, s) for s in scorers
    ]
    out = OrderedDict()
    for name, spec in items:
        if isinstance(spec, dict):
            spec = dict(spec)
            name = spec.pop('name', None) or name or spec['type']
            scorer = build_scorer(spec)
        elif isinstance(spec, str):
            name = name or spec
            scorer = build_scorer(spec)
        elif isinstance(spec, BaseScorer):
            scorer = spec
            name = name or spec.name
        else:
            raise TypeError('a scorer must be a name, a config dict or a '
                            f'BaseScorer, got {spec!r}')
        if name in out:
            raise ValueError(f'scorer name {name!r} is used twice; give one '
                             "of them a `name`")
        out[name] = scorer
    if not out:
        raise ValueError('no scorers given')
    return out


class _InstanceAttr:
    """Removable handle for an attribute set on one instance."""

    def __init__(self, obj, name):
        self.obj, self.name = obj, name

    def remove(self):
        self.obj.__dict__.pop(self.name, None)


class OODScoring:
    """Make every ``predict`` of ``model`` also fill ``ood_scores``.

    Args:
        model: An mmseg segmentor (EncoderDecoder, CascadeEncoderDecoder or
            a subclass), possibly inside DDP or a TTA model.
        scorers: Scorer names, config dicts (``dict(type='n_energy',
            eta=1.5, name='n_energy_1.5')``) or instances, or a mapping from
            name to one of those.
        strict: If a scorer cannot run on this model (an embedding scorer on
            a mask-classification head), raise; with ``strict=False`` skip it
            with a warning.

    Example:
        >>> with OODScoring(model, ['msp', 'energy', 'n_energy']):
        ...     results = model.test_step(data)
        >>> results[0].ood_scores['energy'].shape   # (H, W) at ori_shape
    """

    def __init__(self, model: nn.Module, scorers, strict: bool = True):
        self.segmentor = unwrap_segmentor(model)
        self.head = final_decode_head(self.segmentor)
        self.classifier = final_classifier(self.head)
        self.kind = head_kind(self.head)
        self.background_index = getattr(self.head, 'background_index', None)
        self.scorers = build_scorers(scorers)
        for name, scorer in list(self.scorers.items()):
            reason = scorer.unsupported_reason(self.classifier is not None,
                                               self.kind)
            if reason is None:
                continue
            if strict:
                raise UnsupportedScorerError(reason)
            warnings.warn(f'skipping scorer {name!r}: {reason}')
            del self.scorers[name]
        if not self.scorers:
            raise UnsupportedScorerError('none of the scorers can run on '
                                         'this model')
        self._handles = []
        self._capture = None
        self._active = False
        self._channels = None

    @property
    def names(self) -> list:
        return list(self.scorers)

    # context -----------------------------------------------------------------
    def attach(self) -> 'OODScoring':
        if self._handles:
            return self
        seg = self.segmentor
        self._handles.append(
            seg.register_forward_pre_hook(self._before_forward,
                                          with_kwargs=True))
        self._handles.append(
            seg.register_forward_hook(self._after_forward, with_kwargs=True))
        if self.classifier is not None:
            self._capture = EmbeddingCapture(self.classifier)
            self._wrap_predict_by_feat()
        return self

    def _wrap_predict_by_feat(self) -> None:
        head = self.head
        original = head.predict_by_feat

        def predict_by_feat(seg_logits, batch_img_metas):
            return original(self._append_scores(seg_logits), batch_img_metas)

        # Instance attribute shadowing the class method; removed on detach.
        head.predict_by_feat = predict_by_feat
        self._handles.append(_InstanceAttr(head, 'predict_by_feat'))

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._capture is not None:
            self._capture.remove()
            self._capture = None
        self._end_predict()

    def __enter__(self) -> 'OODScoring':
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    # scoring -----------------------------------------------------------------
    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        """All score maps stacked: ``(N, C, ...) -> (N, K, ...)``."""
        return torch.stack([s(inputs) for s in self.scorers.values()], dim=1)

    def _inputs(self, logits, embeddings=None) -> ScoreInputs:
        cap = self._capture
        return ScoreInputs(
            logits=logits,
            embeddings=embeddings,
            cls_weight=cap.weight if cap is not None else None,
            cls_bias=cap.bias if cap is not None else None,
            head_kind=self.kind,
            background_index=self.background_index)

    # hooks -------------------------------------------------------------------
    @staticmethod
    def _mode(args, kwargs) -> str:
        if 'mode' in kwargs:
            return kwargs['mode']
        return args[2] if len(args) > 2 else 'tensor'

    def _before_forward(self, module, args, kwargs):
        if self._mode(args, kwargs) != 'predict':
            return None
        self._active = True
        self._channels = module.out_channels
        if self.classifier is not None:
            module.out_channels = self._channels + len(self.scorers)
        return None

    def _end_predict(self) -> None:
        if self._active and self._channels is not None:
            self.segmentor.out_channels = self._channels
        self._active = False

    def _append_scores(self, logits):
        if not self._active or not isinstance(logits, torch.Tensor):
            return logits
        if self._capture.embeddings is None:
            raise RuntimeError(
                f'{type(self.head).__name__}.conv_seg did not run before '
                'predict_by_feat; cannot capture the embeddings')
        with torch.no_grad():
            maps = self.score(self._inputs(logits, self._capture.embeddings))
        self._capture.embeddings = None
        return torch.cat([logits, maps.to(logits.dtype)], dim=1)

    def _after_forward(self, module, args, kwargs, output):
        if not self._active:
            return None
        num_classes = self._channels
        self._end_predict()
        for sample in output:
            full = sample.seg_logits.data
            if self.classifier is not None:
                logits, maps = full[:num_classes], full[num_classes:]
            else:
                logits = full
                with torch.no_grad():
                    maps = self.score(self._inputs(logits[None]))[0]
            if num_classes > 1:
                pred = sample.pred_sem_seg.data
                # mmseg took the argmax over logits and score channels; only
                # pixels where a score channel won need the argmax again
                won = pred >= num_classes
                if won.any():
                    pred = pred.clone()
                    pred[won] = logits[:, won[0]].argmax(dim=0).to(pred.dtype)
            else:  # mmseg's binary rule; logits are then probabilities
                logits = logits.sigmoid() if self.classifier is not None \
                    else logits
                pred = (logits > self.head.threshold).to(logits)
            sample.set_data({
                'seg_logits': PixelData(data=logits),
                'pred_sem_seg': PixelData(data=pred)
            })
            sample.set_field(
                {n: maps[k].float()
                 for k, n in enumerate(self.scorers)}, 'ood_scores')
        return output
