"""Attach OOD scorers to any mmseg segmentor: one forward pass, every score.

How it works (and why the maps line up with ``pred_sem_seg``): the final
decode head's class scores are intercepted where the head hands them to
mmseg's post-processing, before any resizing - ``predict_by_feat`` for
heads derived from ``BaseDecodeHead`` (a forward hook cannot be used since
``predict`` calls ``self.forward`` directly), ``predict`` itself for
mask-classification heads (MaskFormer, Mask2Former), whose ``predict``
computes ``f_k = sum_q softmax(c_q)_k sigmoid(m_q)`` from the final decoder
layer. The wrapper computes every score from those class scores (plus the
embeddings ``z`` captured by a forward hook on ``conv_seg`` for heads that
end in a linear classifier, or the per-query class and mask logits captured
by a forward hook on a mask-classification head) and appends the K score
maps to the class scores as extra channels. mmseg itself then treats them
exactly like its ``seg_logits`` - resize to the input, slide-window
stitching (the segmentor's ``out_channels`` is raised by K meanwhile). The
segmentor's ``postprocess_result`` is wrapped too: it splits the channels
again, so that mmseg post-processes the class scores alone (``seg_logits``
and ``pred_sem_seg`` are exactly those of the plain model, with no argmax
over score channels), and gives the score maps the same padding removal,
un-flipping and resize to ``ori_shape`` (skipped where the size already is
``ori_shape``: a bilinear resize to the same size is the identity). A
forward hook on the segmentor stores ``data_sample.ood_scores = {name:
Tensor (H, W)}``. Under mixed precision (``torch.autocast``: float16 /
bfloat16 class scores) the channels are float32, so that the score maps
keep their float32 values; the class scores are widened exactly, and
mmseg post-processes them in float32 (``seg_logits`` is then float32).

Cost: the scorers run on ``(N, C, h, w)`` at the head's resolution (1/4 or
1/8 of the input for most heads; the padded input for mask-classification
heads, which upsample their masks first); the extra channels add K/C to the
upsampling and stitching work. A scorer that reads the mask probabilities
(``no_object``, ``eam``, ``mask2anomaly`` with stuff classes) makes the
wrapper run the head's semantic inference itself
(:func:`~mmseg_ood.models.mask_classification.mask_predict`, the same
operations, so ``seg_logits`` is bit-identical) to keep them.

Flip (scorers with ``requires_flip``, e.g. ``mask2anomaly:flip=True``): the
segmentor's ``inference`` is wrapped too, and after the plain pass it runs
once more, on the batch with each image flipped horizontally *within its
unpadded region* (the region ``postprocess_result`` keeps: the padding
mmseg adds at the right and bottom stays where it is, so each image is
padded exactly as the flipped image would be on its own). In that pass
only the flip scorers are computed (the other channels are zeros). Its
maps get the same post-processing as the plain ones (un-padding, mmseg's
own un-flipping, resize to ``ori_shape``), are then flipped back, and each
flip scorer's map is the mean of the two. Un-flipping after the
post-processing, in the image's frame, is exact for every head and for
whole and slide inference (cropping the flipped region back out and a
bilinear resize both commute with the flip), so the flipped pass yields
what the model gives the flipped image on its own. It costs a second
forward pass of the whole model, and runs only when a scorer asks for it.

Perturbation (scorers with ``requires_perturbation``: ODIN): in the same
wrapped ``inference``, for each such scorer, one more pass with gradients
gives ``grad_x`` of the scorer's ``perturbation_loss`` of the class scores
(the model's ``inference`` output, at the input's size), the input steps to
``x - epsilon * scale * sign(grad_x)`` (``scale = 255 / std`` per channel
of the data preprocessor: ``epsilon`` is in units of the image in ``[0,
1]``), and a forward pass of the perturbed input computes that scorer's
channel, which replaces the plain one after the same post-processing. Cost:
one forward and backward pass and one forward pass per such scorer.
"""
from __future__ import annotations

import contextlib
import functools
import warnings
from collections import OrderedDict
from typing import Iterable, Mapping, Sequence, Union

import torch
import torch.nn as nn
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.models.utils import resize
from mmseg.structures import SegDataSample

from ..errors import InvalidTypeError, InvalidValueError, OODNotice
from ..scorers import (BaseScorer, ScoreInputs, UnsupportedScorerError,
                       build_scorer)
from .captures import EmbeddingCapture, QueryCapture
from .introspection import (describe_head, final_classifier, final_decode_head,
                            head_kind, unwrap_segmentor)
from .mask_classification import mask_predict

ScorerSpec = Union[str, dict, BaseScorer]


def padding_of(meta: Mapping) -> Sequence[int]:
    """``(left, right, top, bottom)``: the padding around an image in its
    batch input, as mmseg's ``BaseSegmentor.postprocess_result`` reads it
    (``img_padding_size`` if set, else ``padding_size``, else none).

    Args:
        meta: The image's metainfo.
    """
    if 'img_padding_size' not in meta:
        return meta.get('padding_size', [0] * 4)
    return meta['img_padding_size']


def flip_image_regions(inputs: torch.Tensor,
                       batch_img_metas: Sequence[Mapping]) -> torch.Tensor:
    """The batch with each image flipped horizontally inside its unpadded
    region (:func:`padding_of`); the padding stays where it was.

    Args:
        inputs: The batch input, ``(N, C, H, W)``, as the segmentor's
            ``inference`` takes it.
        batch_img_metas: The images' metainfo, one per image.

    Returns:
        Tensor: A new ``(N, C, H, W)`` tensor.
    """
    _, _, h, w = inputs.shape
    out = inputs.clone()
    for i, meta in enumerate(batch_img_metas):
        left, right, top, bottom = padding_of(meta)
        region = inputs[i, :, top:h - bottom, left:w - right]
        out[i, :, top:h - bottom, left:w - right] = region.flip(-1)
    return out


def build_scorers(scorers: Union[Iterable[ScorerSpec], Mapping[str,
                                                                 ScorerSpec]]
                  ) -> 'OrderedDict[str, BaseScorer]':
    """Named scorers from names, config dicts, instances or a name->spec map.

    Names default to the registry name; a config dict may set ``name`` to
    evaluate one scorer with several parameter sets.

    Args:
        scorers: A list of scorers, each a registered name or
            ``'NAME:key=value,...'`` text (named as written), a config dict
            ``dict(type=..., name=..., **params)`` (named by ``name``, else
            its ``type``) or a :class:`~mmseg_ood.scorers.BaseScorer`
            (named by its ``name``), or a ``(name, spec)`` pair; or a
            mapping from the name to report to such a spec.

    Returns:
        OrderedDict: ``{name: scorer}`` in the order given.

    Raises:
        TypeError: a spec of another type.
        ValueError: a name used twice, or no scorers at all.
    """
    items = scorers.items() if isinstance(scorers, Mapping) else [
        s if isinstance(s, tuple) else (None, s) for s in scorers
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
            raise InvalidTypeError(
                'a scorer must be a name, a config dict or a '
                f'BaseScorer, got {spec!r}')
        if name in out:
            raise InvalidValueError(
                f'scorer name {name!r} is used twice; give one '
                "of them a `name`")
        out[name] = scorer
    if not out:
        raise InvalidValueError('no scorers given')
    return out


class _ExtraPass:
    """A second forward pass for some scorers: ``'flip'`` (their maps are
    averaged with the plain ones, flipped back) or ``'perturb'`` (one
    scorer, scored on a perturbed input; its map replaces the plain one).
    """

    def __init__(self, kind: str, index: list, scorer=None):
        self.kind, self.index, self.scorer = kind, index, scorer


#: The value of ``OODScoring._current_pass`` during a gradient pass: no
#: score channel is computed.
_GRADIENT = _ExtraPass('gradient', [])


class _InstanceAttr:
    """Set ``obj.name = value`` on the instance; :meth:`remove` puts back
    what the instance had before (another wrapper, when attachments nest)
    or removes it."""

    _MISSING = object()

    def __init__(self, obj, name, value):
        self.obj, self.name = obj, name
        self.previous = obj.__dict__.get(name, self._MISSING)
        setattr(obj, name, value)

    def remove(self):
        if self.previous is self._MISSING:
            self.obj.__dict__.pop(self.name, None)
        else:
            self.obj.__dict__[self.name] = self.previous


class OODScoring:
    """Make every ``predict`` of ``model`` also fill ``ood_scores``.

    Args:
        model: An mmseg segmentor (EncoderDecoder, CascadeEncoderDecoder or
            a subclass), possibly inside DDP or a TTA model.
        scorers: Scorer names, config dicts (``dict(type='n_energy',
            eta=1.5, name='n_energy_1.5')``) or instances, or a mapping from
            name to one of those.
        strict: If a scorer cannot run on this model (an embedding scorer on
            a head without a linear classifier, ``rba`` on a head without
            queries), raise; with ``strict=False`` skip it with a warning.

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
        head_name = describe_head(self.head)
        for name, scorer in list(self.scorers.items()):
            reason = scorer.unsupported_reason(self.classifier is not None,
                                               self.kind, head=head_name)
            if reason is None and (scorer.requires_flip or
                                   scorer.requires_perturbation) and \
                    not callable(getattr(self.segmentor, 'inference', None)):
                what = ('averages over a horizontal flip'
                        if scorer.requires_flip else
                        'scores a perturbed input')
                reason = (f"scorer '{name}' {what} "
                          'and needs a second forward pass through the '
                          "segmentor's `inference(inputs, batch_img_metas)`"
                          f', which {type(self.segmentor).__name__} does not '
                          'have')
            if reason is None:
                continue
            if strict:
                raise UnsupportedScorerError(reason)
            warnings.warn(f'skipping scorer {name!r}: {reason}', OODNotice)
            del self.scorers[name]
        if not self.scorers:
            raise UnsupportedScorerError('none of the scorers can run on '
                                         'this model')
        self._handles = []
        self._capture = None
        self._queries = None
        self._mask_probs = None
        self._active = False
        self._channels = None
        self._maps = None  # per sample (K, H, W), from postprocess_result
        # the extra passes (flip, perturbation), their score channels
        # (N, K, H, W) as `inference` returns them (before post-processing),
        # and the pass running now
        self._flip_index = [
            k for k, s in enumerate(self.scorers.values()) if s.requires_flip
        ]
        self._passes = [_ExtraPass('flip', self._flip_index)] \
            if self._flip_index else []
        self._passes += [
            _ExtraPass('perturb', [k], s)
            for k, s in enumerate(self.scorers.values())
            if s.requires_perturbation
        ]
        self._extra = None
        self._current_pass = None

    @property
    def names(self) -> list:
        return list(self.scorers)

    # context -----------------------------------------------------------------
    def attach(self) -> 'OODScoring':
        if self._handles:
            return self
        seg = self.segmentor
        self._channels = seg.out_channels
        self._handles.append(
            seg.register_forward_pre_hook(self._before_forward,
                                          with_kwargs=True))
        self._handles.append(
            seg.register_forward_hook(self._after_forward, with_kwargs=True))
        head = self.head
        if self.kind == 'mask':
            self._queries = QueryCapture(head)
            original_predict = head.predict
            keep_masks = any(s.requires_queries
                             for s in self.scorers.values())

            def predict(x, batch_img_metas, test_cfg=None):
                if not (self._active and keep_masks):
                    return self._append_scores(
                        original_predict(x, batch_img_metas, test_cfg))
                # the head's own computation, keeping its mask probabilities
                seg_logits, _, self._mask_probs = mask_predict(
                    head, x, batch_img_metas)
                return self._append_scores(seg_logits)

            # Instance attribute shadowing the class method; removed on
            # detach.
            self._handles.append(_InstanceAttr(head, 'predict', predict))
        else:
            if self.classifier is not None:
                self._capture = EmbeddingCapture(self.classifier)
            original = head.predict_by_feat

            def predict_by_feat(seg_logits, *args, **kwargs):
                if isinstance(seg_logits, torch.Tensor):
                    return original(self._append_scores(seg_logits), *args,
                                    **kwargs)
                # not one tensor (SAN's head takes [mask_props, logits]):
                # score what it returns, resized to the input
                return self._append_scores(original(seg_logits, *args,
                                                    **kwargs))

            self._handles.append(
                _InstanceAttr(head, 'predict_by_feat', predict_by_feat))
        if self._passes:
            self._wrap_inference()
        self._wrap_postprocess_result()
        return self

    def _wrap_inference(self) -> None:
        """After the plain ``inference``, run the extra passes (on the
        horizontally flipped images; on each perturbed input) and keep
        their score channels."""
        seg = self.segmentor
        original = seg.inference

        def inference(inputs, batch_img_metas):
            if not self._active or self._current_pass is not None:
                return original(inputs, batch_img_metas)
            # copies taken first: mmseg's slide inference edits img_shape
            metas = [dict(meta) for meta in batch_img_metas]
            seg_logits = original(inputs, batch_img_metas)
            extra = []
            for p in self._passes:
                if p.kind == 'flip':
                    x = flip_image_regions(inputs, metas)
                else:
                    x = self._perturbed_input(p.scorer, inputs, metas,
                                              original)
                self._current_pass = p
                try:
                    out = original(x, [dict(meta) for meta in metas])
                finally:
                    self._current_pass = None
                extra.append(out[:, self._channels:])
            self._extra = extra
            return seg_logits

        self._handles.append(_InstanceAttr(seg, 'inference', inference))

    def _perturbed_input(self, scorer, inputs, metas, original):
        """``x - epsilon * scale * sign(grad_x loss)`` (ODIN's step), the
        loss being ``scorer.perturbation_loss`` of the class scores."""
        self._current_pass = _GRADIENT
        try:
            with torch.enable_grad():
                x = inputs.detach().float().requires_grad_(True)
                logits = original(x, [dict(meta) for meta in metas])
                loss = scorer.perturbation_loss(logits[:, :self._channels])
                grad, = torch.autograd.grad(loss, x)
        finally:
            self._current_pass = None
            # what the gradient pass captured is not scored: let its graph go
            for capture in (self._capture, self._queries):
                if capture is not None:
                    capture.clear()
            self._mask_probs = None
        step = scorer.epsilon * self._input_scale(inputs)
        return (inputs - step * grad.sign().to(inputs.dtype)).detach()

    def _input_scale(self, inputs) -> torch.Tensor:
        """Input units per unit of the image in [0, 1]: ``255 / std`` per
        channel when the data preprocessor normalizes, else 255."""
        pre = getattr(self.segmentor, 'data_preprocessor', None)
        std = getattr(pre, 'std', None)
        if getattr(pre, '_enable_normalize', False) and \
                isinstance(std, torch.Tensor):
            return 255.0 / std.to(inputs).reshape(1, -1, 1, 1)
        return inputs.new_tensor(255.0)

    def _wrap_postprocess_result(self) -> None:
        seg = self.segmentor
        original = seg.postprocess_result

        def postprocess_result(seg_logits, data_samples=None):
            c = self._channels
            if not self._active or not isinstance(seg_logits, torch.Tensor) \
                    or seg_logits.shape[1] != c + len(self.scorers):
                return original(seg_logits, data_samples)
            maps = seg_logits[:, c:]
            if type(seg).postprocess_result is \
                    BaseSegmentor.postprocess_result:
                post = self._postprocess_maps
            else:  # another post-processing: let it treat the maps too
                post = functools.partial(self._postprocess_maps_by, original)
            self._maps = post(maps, data_samples)
            if self._passes:
                if self._extra is None:
                    raise RuntimeError(
                        f'{type(seg).__name__}.predict did not call '
                        'inference; cannot run the extra passes of '
                        f'{self._extra_names()}')
                extra, self._extra = self._extra, None
                for p, channels in zip(self._passes, extra):
                    self._maps = self._merge_pass(
                        p, self._maps, post(channels, data_samples))
            return original(seg_logits[:, :c], data_samples)

        self._handles.append(
            _InstanceAttr(seg, 'postprocess_result', postprocess_result))

    def _extra_names(self, kinds=('flip', 'perturb')) -> str:
        names = list(self.scorers)
        return ', '.join(repr(names[k]) for p in self._passes
                         if p.kind in kinds for k in p.index)

    @staticmethod
    def _merge_pass(extra_pass: _ExtraPass, maps: list,
                    other_maps: list) -> list:
        """Per sample, the pass's channels become the mean of the plain
        map and the flipped pass's map flipped back (``'flip'``), or the
        perturbed pass's map (``'perturb'``); both already post-processed,
        so in the frame of the image."""
        index = extra_pass.index
        out = []
        for plain, other in zip(maps, other_maps):
            merged = plain.clone()
            if extra_pass.kind == 'flip':
                merged[index] = (plain[index] + other[index].flip(-1)) / 2
            else:
                merged[index] = other[index]
            out.append(merged)
        return out

    def _postprocess_maps(self, maps, data_samples) -> list:
        """Score maps ``(N, K, H, W)`` -> per sample ``(K, h, w)``, as
        mmseg's ``BaseSegmentor.postprocess_result`` treats ``seg_logits``
        (padding removal, un-flipping, bilinear resize to ``ori_shape``)."""
        if data_samples is None:
            return list(maps)
        _, _, h, w = maps.shape
        out = []
        for i, sample in enumerate(data_samples):
            meta = sample.metainfo
            left, right, top, bottom = padding_of(meta)
            m = maps[i:i + 1, :, top:h - bottom, left:w - right]
            if meta.get('flip', None):
                direction = meta.get('flip_direction', None)
                if direction not in ('horizontal', 'vertical'):
                    raise InvalidValueError(
                        f'unknown flip_direction {direction!r}')
                m = m.flip(dims=(3, ) if direction == 'horizontal' else (2, ))
            # at the same size, bilinear weights are 1 and 0: the identity
            if tuple(m.shape[2:]) != tuple(meta['ori_shape']):
                m = resize(m, size=meta['ori_shape'], mode='bilinear',
                           align_corners=self.segmentor.align_corners,
                           warning=False)
            out.append(m[0])
        return out

    @staticmethod
    def _postprocess_maps_by(postprocess, maps, data_samples) -> list:
        """Score maps through a segmentor's own ``postprocess_result``, on
        copies of the samples' metainfo (an extra zero channel keeps a
        single map from being taken for binary logits)."""
        k = maps.shape[1]
        if k == 1:
            maps = torch.cat([maps, torch.zeros_like(maps)], dim=1)
        samples = None if data_samples is None else [
            SegDataSample(metainfo=s.metainfo) for s in data_samples
        ]
        out = postprocess(maps, samples)
        return [s.seg_logits.data[:k] for s in out]

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        for capture in (self._capture, self._queries):
            if capture is not None:
                capture.remove()
        self._capture = self._queries = None
        self._end_predict()

    def __enter__(self) -> 'OODScoring':
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    # scoring -----------------------------------------------------------------
    def score(self, inputs: ScoreInputs) -> torch.Tensor:
        """All score maps stacked: ``(N, C, ...) -> (N, K, ...)``."""
        return torch.stack([s(inputs) for s in self.scorers.values()], dim=1)

    def _inputs(self, logits) -> ScoreInputs:
        """What the scorers read, from the class scores at the head's output
        and the captures of the same forward pass."""
        cap = self._capture
        embeddings = query_logits = mask_probs = None
        if cap is not None:
            embeddings = cap.embeddings
            if embeddings is None:
                raise RuntimeError(
                    f'{type(self.head).__name__}.conv_seg did not run before '
                    'predict_by_feat; cannot capture the embeddings')
            cap.embeddings = None
        if self._queries is not None:
            query_logits, _ = self._queries.pop()
            if query_logits is None:
                raise RuntimeError(
                    f'{type(self.head).__name__}.forward did not run in '
                    'predict; cannot capture the query logits')
            mask_probs, self._mask_probs = self._mask_probs, None
        return ScoreInputs(
            logits=logits,
            embeddings=embeddings,
            cls_weight=cap.weight if cap is not None else None,
            cls_bias=cap.bias if cap is not None else None,
            head_kind=self.kind,
            background_index=self.background_index,
            query_logits=query_logits,
            mask_probs=mask_probs)

    # hooks -------------------------------------------------------------------
    @staticmethod
    def _mode(args, kwargs) -> str:
        if 'mode' in kwargs:
            return kwargs['mode']
        return args[2] if len(args) > 2 else 'tensor'

    def _before_forward(self, module, args, kwargs):
        if self._mode(args, kwargs) != 'predict':
            return None
        self._start_predict()
        return None

    def _start_predict(self) -> None:
        # a predict that raised leaves stale state: start clean
        self._end_predict()
        for capture in (self._capture, self._queries):
            if capture is not None:
                capture.clear()
        self._mask_probs = None
        self._active = True
        self.segmentor.out_channels = self._channels + len(self.scorers)

    @contextlib.contextmanager
    def scores_appended(self):
        """Within the block, the final head's class scores carry the K
        score channels appended (``out_channels`` raised by K), for a
        caller that runs the segmentor's ``inference`` itself instead of
        ``predict`` (e.g. an exported graph): its ``seg_logits`` are then
        ``(N, C + K, H, W)``, the scores resized and stitched with the
        logits. Needs :meth:`attach` first."""
        if self._channels is None:
            raise RuntimeError('OODScoring.scores_appended() needs attach() '
                               'first')
        if self._flip_index:
            raise UnsupportedScorerError(
                f'{self._extra_names(("flip", ))} average over a horizontal '
                'flip, which needs a second forward pass that a caller of '
                "the segmentor's `inference` alone (e.g. an exported "
                'graph) does not run; use flip=False')
        if self._passes:
            raise UnsupportedScorerError(
                f'{self._extra_names(("perturb", ))} score a perturbed '
                'input, which needs a gradient and a second forward pass '
                "that a caller of the segmentor's `inference` alone (e.g. "
                'an exported graph) does not run')
        self._start_predict()
        try:
            yield
        finally:
            self._end_predict()

    def _end_predict(self) -> None:
        if self._channels is not None:
            self.segmentor.out_channels = self._channels
        self._active = False
        self._maps = None
        self._extra = None
        self._current_pass = None

    def _append_scores(self, logits):
        if not self._active or not isinstance(logits, torch.Tensor):
            return logits
        n, c = logits.shape[:2]
        # the maps are written straight after the logits: no stacked copy.
        # Half-precision logits (torch.autocast) go into a float32 tensor
        # (exactly), else the float32 maps would be rounded to 8 (bfloat16)
        # or 11 (float16) significant bits and tie, or overflow float16
        dtype = torch.float32 if logits.dtype in (
            torch.float16, torch.bfloat16) else logits.dtype
        out = logits.new_empty((n, c + len(self.scorers)) + logits.shape[2:],
                               dtype=dtype)
        out[:, :c] = logits
        with torch.no_grad():
            current = self._current_pass
            if current is _GRADIENT:  # only the class scores are read
                out[:, c:] = 0
                return out
            inputs = self._inputs(logits)
            for k, scorer in enumerate(self.scorers.values()):
                if current is not None and k not in current.index:
                    out[:, c + k] = 0  # only this pass's scorers read it
                else:
                    out[:, c + k] = scorer(inputs)
        return out

    def _after_forward(self, module, args, kwargs, output):
        if not self._active:
            return None
        maps = self._maps
        self._end_predict()
        if maps is None:
            method = 'predict' if self.kind == 'mask' else 'predict_by_feat'
            raise RuntimeError(
                f'{type(self.segmentor).__name__}.predict did not call '
                f'{type(self.head).__name__}.{method} and postprocess_result '
                'with the score channels appended; cannot split the OOD '
                'scores')
        for i, sample in enumerate(output):
            scores = maps[i]
            sample.set_field(
                {n: scores[k].float()
                 for k, n in enumerate(self.scorers)}, 'ood_scores')
        return output
