"""Inputs, base class and registry shared by every OOD scorer.

Conventions (see ``DESIGN.md``): a scorer maps :class:`ScoreInputs` to one
float32 value per pixel, **higher = more OOD**; no caller inverts later.
Shapes: logits ``(N, C, H, W)`` -> ``(N, H, W)``, or ``(N, C)`` -> ``(N,)``.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Optional, Union

import torch
from mmengine.registry import Registry
from torch import Tensor

from ..errors import InvalidTypeError, InvalidValueError
from ..implicit_background import foreground_logits
from ..utils.arguments import check_mapping_arguments

#: The package's scorer registry: ``build_scorer(dict(type='msp'))``.
OOD_SCORERS = Registry('ood_scorer', scope='mmseg_ood')

#: ``'softmax'``: per-pixel class logits from a 1x1 linear classifier;
#: ``'ibe'`` / ``'scribe'``: the same with an implicit background;
#: ``'mask'``: mask classification (MaskFormer / Mask2Former), whose
#: per-pixel class scores mix per-query class and mask predictions;
#: ``'logits'``: per-pixel class logits without a linear classifier
#: (PointRend's point head, K-Net's kernel-update head).
HEAD_KINDS = ('softmax', 'ibe', 'scribe', 'mask', 'logits')


@dataclass
class ScoreInputs:
    """Everything a scorer may read, captured from one forward pass.

    Args:
        logits: Class scores ``s = W z + b``, ``(N, C, H, W)`` or ``(N, C)``.
            For IBE / SCrIBE heads the full C-vector, implicit background
            included. For ``'mask'`` heads, the per-pixel class scores mmseg
            predicts from: ``f_k(x) = sum_q softmax(c_q)_k sigmoid(m_q(x))``
            over the K classes (the "no object" class dropped), in
            ``[0, Q]``.
        embeddings: ``z``, the input of the final 1x1 classifier,
            ``(N, D, H, W)`` or ``(N, D)``; ``None`` for heads without a
            linear classifier.
        cls_weight: Classifier weight ``W``, ``(C, D)``.
        cls_bias: Classifier bias ``b``, ``(C,)``, or ``None``.
        head_kind: One of :data:`HEAD_KINDS`.
        background_index: Index of the (implicit) background class, for
            ``'ibe'`` / ``'scribe'`` heads.
        query_logits: Mask classification: the final decoder layer's class
            logits ``c``, ``(N, Q, K + 1)``, the last one "no object".
            A head with negative classes (UNO's ``OutlierMask2FormerHead``)
            has ``(N, Q, K + 1 + n)``: columns ``K .. K + n - 1`` are the
            negative classes (see :meth:`num_negative_classes`).
        mask_probs: Mask classification: ``sigmoid(m)`` of its mask logits
            ``m`` resized to the logits' size, ``(N, Q, H, W)``, the tensor
            the head computes ``f`` from; ``None`` unless a scorer needs it.

    Shape:
        ``embeddings`` and ``mask_probs`` have the batch and spatial shape
        of ``logits``.
    """
    logits: Tensor
    embeddings: Optional[Tensor] = None
    cls_weight: Optional[Tensor] = None
    cls_bias: Optional[Tensor] = None
    head_kind: str = 'softmax'
    background_index: Optional[int] = None
    query_logits: Optional[Tensor] = None
    mask_probs: Optional[Tensor] = None

    def __post_init__(self):
        if not isinstance(self.logits, Tensor):
            raise InvalidTypeError('`logits` must be a torch.Tensor, got '
                                   f'{type(self.logits).__name__}')
        if self.logits.dim() not in (2, 4):
            raise InvalidValueError(
                '`logits` must be (N, C) or (N, C, H, W), got '
                f'shape {tuple(self.logits.shape)}')
        if self.head_kind not in HEAD_KINDS:
            raise InvalidValueError(
                f'`head_kind` must be one of {HEAD_KINDS}, got '
                f'{self.head_kind!r}')
        n, c = self.logits.shape[:2]
        spatial = tuple(self.logits.shape[2:])
        if self.embeddings is not None:
            e = self.embeddings
            if e.dim() != self.logits.dim() or e.shape[0] != n or tuple(
                    e.shape[2:]) != spatial:
                raise InvalidValueError(
                    '`embeddings` must be (N, D' + ', H, W' * bool(spatial) +
                    f') matching logits {tuple(self.logits.shape)}, got '
                    f'{tuple(e.shape)}')
        if self.cls_weight is not None:
            w = self.cls_weight
            if w.dim() == 4 and w.shape[2:] == (1, 1):  # a 1x1 conv weight
                self.cls_weight = w = w.flatten(1)
            if w.dim() != 2:
                raise InvalidValueError('`cls_weight` must be (C, D), got '
                                        f'{tuple(w.shape)}')
            if self.embeddings is not None and w.shape[1] != \
                    self.embeddings.shape[1]:
                raise InvalidValueError(
                    f'`cls_weight` {tuple(w.shape)} does not match the '
                    f'embedding dimension D={self.embeddings.shape[1]}')
        if self.cls_bias is not None and self.cls_weight is not None and \
                self.cls_bias.shape != (self.cls_weight.shape[0], ):
            raise InvalidValueError(
                f'`cls_bias` must be ({self.cls_weight.shape[0]},'
                f'), got {tuple(self.cls_bias.shape)}')
        if self.query_logits is not None:
            q = self.query_logits
            if q.dim() != 3 or q.shape[0] != n or q.shape[2] < c + 1:
                raise InvalidValueError(
                    f'`query_logits` must be (N, Q, C + 1) = ({n}, Q, '
                    f'{c + 1}) for logits {tuple(self.logits.shape)} '
                    '(or wider, with negative classes), got '
                    f'{tuple(q.shape)}')
        if self.mask_probs is not None:
            m = self.mask_probs
            if self.query_logits is None or m.dim() != 2 + len(spatial) \
                    or m.shape[:2] != self.query_logits.shape[:2] or \
                    tuple(m.shape[2:]) != spatial:
                raise InvalidValueError(
                    '`mask_probs` must be (N, Q' + ', H, W' * bool(spatial)
                    + ') matching `query_logits` and the logits, got '
                    f'{tuple(m.shape)}')
        if self.head_kind in ('ibe', 'scribe'):
            if self.background_index is None or not \
                    0 <= self.background_index < c:
                raise InvalidValueError(
                    f"`background_index` must be in [0, {c}) for an "
                    f"'{self.head_kind}' head, got {self.background_index!r}")

    @property
    def num_negative_classes(self) -> int:
        """The negative classes between the K known classes and "no
        object" in ``query_logits`` (0 without query logits)."""
        if self.query_logits is None:
            return 0
        return self.query_logits.shape[2] - self.logits.shape[1] - 1

    def per_class(self, values: Tensor) -> Tensor:
        """Reshape a ``(C,)`` vector to broadcast against ``logits``."""
        return values.view(1, -1, *([1] * (self.logits.dim() - 2)))


class BaseScorer:
    """One OOD score; subclasses implement :meth:`score`.

    A scorer is called with a :class:`ScoreInputs`: ``scorer(inputs)``
    checks that the inputs have what the score needs
    (:meth:`check_supported`), computes :meth:`score` and returns it as
    float32, ``(N, C, H, W) -> (N, H, W)`` (or ``(N, C) -> (N,)``), higher
    = more OOD.

    Attributes:
        name: The registry name (``'msp'``, ``'energy'``, ...), used in
            messages.
        requires_embeddings: The score reads ``embeddings`` (and possibly the
            classifier), so it needs a head that ends in a linear classifier.
        requires_background: The score needs an IBE / SCrIBE head.
        requires_mask_head: The score is defined on the class scores ``f``
            of a mask-classification head only.
        requires_queries: The score reads ``query_logits`` and
            ``mask_probs`` (kept by the caller from the head's own
            computation only when asked for); implies
            ``requires_mask_head``.
        requires_flip: The score is the mean of :meth:`score` on the image
            and of :meth:`score` on its horizontal flip, flipped back (a
            flip test-time augmentation of the score alone).
            ``scorer(inputs)`` scores one forward pass; the caller that
            holds the model (:class:`~mmseg_ood.models.OODScoring`, hence
            ``score_image``, ``ood_test`` and ``OODScoringHook``) runs the
            flipped pass, once for all such scorers, and forms the mean.
        requires_fit: The score needs statistics fitted on ID data
            (:class:`~mmseg_ood.scorers.feature_space.FeatureSpaceScorer`);
            the tools fit them on the config's ID split first.
        requires_perturbation: The score is computed on a second forward
            pass of a perturbed input (ODIN); the scorer gives the loss
            whose input gradient the caller that holds the model steps
            along (``perturbation_loss``, ``epsilon``), as for
            ``requires_flip``.
    """
    requires_embeddings = False
    requires_fit = False
    requires_perturbation = False
    requires_background = False
    requires_mask_head = False
    requires_queries = False
    requires_flip = False
    name = ''

    def __call__(self, inputs: ScoreInputs) -> Tensor:
        self.check_supported(inputs)
        out = self.score(inputs)
        return out.float()

    def check_supported(self, inputs: ScoreInputs) -> None:
        """Raise :class:`UnsupportedScorerError` if ``inputs`` lack what the
        score needs."""
        reason = self.unsupported_reason(inputs.embeddings is not None,
                                         inputs.head_kind)
        if reason is None and self.requires_queries and (
                inputs.query_logits is None or inputs.mask_probs is None):
            reason = (f"scorer '{self.name}' needs the per-query class "
                      'logits and mask probabilities of the '
                      'mask-classification '
                      'head; they were not given')
        if reason:
            raise UnsupportedScorerError(reason)

    def unsupported_reason(self, has_embeddings: bool, head_kind: str,
                           head: Optional[str] = None) -> Optional[str]:
        """Why this scorer cannot run on such a model, or ``None``.

        Args:
            has_embeddings: The model has a final linear classifier whose
                input can be captured.
            head_kind: One of :data:`HEAD_KINDS`.
            head: The head as the message should name it (e.g.
                ``"PointHead (PointRend's point head)"``); defaults to the
                kind.
        """
        head = head or f"a '{head_kind}' head"
        if self.requires_embeddings and not has_embeddings:
            return (f"scorer '{self.name}' is an embedding scorer: it needs "
                    'the input of a final 1x1 linear classifier (conv_seg), '
                    f"which this model's final decode head, {head}, does "
                    'not have')
        if self.requires_background and head_kind not in ('ibe', 'scribe'):
            return (f"scorer '{self.name}' needs an IBE or SCrIBE head with "
                    f"an implicit background class; this model's final "
                    f'decode head is {head}')
        if (self.requires_mask_head or self.requires_queries) and \
                head_kind != 'mask':
            return (f"scorer '{self.name}' needs a mask-classification head "
                    '(MaskFormer / Mask2Former: per-query class and mask '
                    f"logits); this model's final decode head is {head}")
        return None

    def score(self, inputs: ScoreInputs) -> Tensor:
        """The score of every pixel; subclasses implement it.

        Args:
            inputs: The captured forward pass, already checked.

        Returns:
            Tensor: ``(N, H, W)`` or ``(N,)``, higher = more OOD.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}()'


class UnsupportedScorerError(InvalidValueError):
    """The model cannot provide what a scorer needs."""


def embedding_norm(inputs: ScoreInputs, eps: float = 1e-12) -> Tensor:
    """``||z||_2`` over the embedding dimension; computed once per
    :class:`ScoreInputs` and shared by the scorers that need it.

    Args:
        inputs: The captured forward pass; ``inputs.embeddings`` must be set
            (``(N, D, H, W)`` or ``(N, D)``).
        eps: Lower bound the norm is clamped to, so that dividing by it
            never divides by zero. The cached value is reused only for the
            same ``eps``.

    Returns:
        Tensor: ``(N, 1, H, W)`` or ``(N, 1)``, in the embeddings' dtype;
        float32 for float16 / bfloat16 embeddings (mixed precision), whose
        norm rounded to 8 or 11 significant bits would make the norm
        scores tie.
    """
    cached = inputs.__dict__.get('_embedding_norm')
    if cached is None or cached[0] != eps:
        z = inputs.embeddings
        wide = torch.float32 if z.dtype in (torch.float16,
                                            torch.bfloat16) else None
        norm = torch.linalg.vector_norm(z, dim=1, keepdim=True,
                                        dtype=wide).clamp_min(eps)
        inputs.__dict__['_embedding_norm'] = cached = (eps, norm)
    return cached[1]


def linear_logits(inputs: ScoreInputs) -> Tensor:
    """The logits the linear classifier computes, ``s = W z + b``.

    All C for a plain head; the C-1 foreground logits for IBE / SCrIBE
    heads, whose background logit ``-logsumexp(v_FG)`` is not linear in
    ``z``.

    Args:
        inputs: The captured forward pass (its ``logits``, ``head_kind``
            and ``background_index`` are read).

    Returns:
        Tensor: ``(N, C, H, W)`` / ``(N, C)``, or ``(N, C - 1, ...)`` for an
        IBE / SCrIBE head.
    """
    if inputs.head_kind in ('ibe', 'scribe'):
        return foreground_logits(inputs.logits, inputs.background_index)
    return inputs.logits


def logits_without_bias(inputs: ScoreInputs) -> Tensor:
    """``W z``: the linear logits (:func:`linear_logits`) with the classifier
    bias removed (``s - b``).

    Args:
        inputs: The captured forward pass; without ``cls_bias`` the linear
            logits are returned unchanged.

    Returns:
        Tensor: The shape of :func:`linear_logits`; float32 for float16 /
        bfloat16 logits with a bias (the difference rounded back to half
        precision would add its rounding to that of the logits).
    """
    logits = linear_logits(inputs)
    if inputs.cls_bias is None:
        return logits
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits - inputs.per_class(inputs.cls_bias)


def check_number(name: str, value, low: Optional[float] = None,
                 low_open: bool = False) -> float:
    """Validate a real-valued constructor argument; return it as float.

    Args:
        name: The argument's name, as the error message quotes it.
        value: The value received; ``bool`` is rejected although it is an
            ``int``.
        low: Lower bound, or ``None`` for none. NaN and infinities are
            always rejected.
        low_open: ``True``: the bound is exclusive (``value > low``);
            ``False``: inclusive (``value >= low``).

    Returns:
        float: ``value`` as a Python float.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is not finite or is below the bound.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidTypeError(f'`{name}` must be a number, got '
                               f'{type(value).__name__}')
    value = float(value)
    if value != value or value in (float('inf'), float('-inf')):
        raise InvalidValueError(f'`{name}` must be finite, got {value}')
    if low is not None and (value < low or (low_open and value == low)):
        op = '>' if low_open else '>='
        raise InvalidValueError(f'`{name}` must be {op} {low}, got {value}')
    return value


def check_num_classes(name: str, logits: Tensor) -> int:
    """The number of classes C of ``logits``; a score over a distribution
    needs C >= 2.

    Args:
        name: The score's name, as the error message quotes it.
        logits: Class scores, ``(N, C, ...)``.

    Returns:
        int: C.

    Raises:
        ValueError: C < 2.
    """
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise InvalidValueError(
            f'{name} needs at least 2 classes, got logits of '
            f'shape {tuple(logits.shape)}')
    return num_classes


def parse_scorer_spec(spec: str) -> dict:
    """A scorer named in text -> its config dict.

    ``'NAME'`` -> ``dict(type=NAME)``; ``'NAME:key=value[,key=value...]'``
    also sets parameters, e.g. ``'n_energy:eta=1.5'`` -> ``dict(type=
    'n_energy', eta=1.5)`` (the "N-Energy + CW" of the norm-decoupling
    thesis, Table 5.1). Values are Python literals (``1.5``, ``True``,
    ``None``); anything else stays a string (``stats_file=sml.json``). This
    is how ``--scorers`` of ``tools/ood_test.py`` sets parameters; wherever
    a scorer is given by name (``OODScoringHook``, ``score_image``), its
    results are reported under the text as written.

    A comma inside brackets or parentheses belongs to the value:
    ``'mask2anomaly:stuff_classes=[2,3,4],flip=True'`` sets a list and a
    flag.

    Args:
        spec: ``'NAME'`` or ``'NAME:key=value[,key=value...]'``; spaces
            around names, keys and values are stripped.

    Returns:
        dict: ``dict(type=NAME, **params)``.

    Raises:
        ValueError: an empty name, an empty parameter list after ``:``, an
            item without ``=`` or with an empty key, or a key given twice;
            the message quotes the text.
    """
    name, colon, rest = spec.partition(':')
    name = name.strip()
    if not name:
        raise InvalidValueError(
            f'scorer {spec!r}: no name before the parameters '
            "(write e.g. 'n_energy:eta=1.5')")
    cfg = dict(type=name)
    if not colon:
        return cfg
    if not rest.strip():
        raise InvalidValueError(f"scorer {spec!r}: nothing after ':' (write "
                                "'NAME:key=value[,key=value...]', e.g. "
                                "'n_energy:eta=1.5')")
    for item in _split_top_level(rest):
        key, eq, text = (t.strip() for t in item.partition('='))
        if not eq or not key:
            raise InvalidValueError(
                f'scorer {spec!r}: {item.strip()!r} is not '
                "'key=value'")
        if key in cfg:
            raise InvalidValueError(
                f'scorer {spec!r}: {key!r} is given twice'
                if key != 'type' else
                f"scorer {spec!r}: 'type' is the name before "
                "':'")
        try:
            cfg[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            cfg[key] = text
    return cfg


def _split_top_level(text: str) -> list:
    """``text`` split at the commas outside ``[]``, ``()`` and ``{}``."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in '([{':
            depth += 1
        elif ch in ')]}':
            depth = max(depth - 1, 0)
        elif ch == ',' and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return items


def build_scorer(cfg: Union[dict, str]) -> BaseScorer:
    """Build a scorer from ``dict(type=NAME, **params)``, a bare name, or
    ``'NAME:key=value,...'`` (:func:`parse_scorer_spec`).

    Args:
        cfg: ``dict(type=NAME, **params)`` where ``type`` is a registered
            name of :data:`OOD_SCORERS` or a :class:`BaseScorer` subclass;
            or the scorer as text.

    Returns:
        BaseScorer: The scorer.

    Raises:
        ValueError: unknown ``type`` (the message lists the registered
            names), or a malformed ``'NAME:...'``.
        TypeError: an argument the scorer does not take; the message lists
            the ones it does.
    """
    if isinstance(cfg, str):
        cfg = parse_scorer_spec(cfg)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise InvalidTypeError(
            'a scorer config must be a dict with a `type` key or '
            f'a name, got {cfg!r}')
    args = dict(cfg)
    name = args.pop('type')
    if isinstance(name, type) and issubclass(name, BaseScorer):
        cls = name
    elif name in OOD_SCORERS.module_dict:
        # Looked up in this registry directly: scorers have no scope
        # hierarchy, and mmengine's scope switching would warn under mmseg's
        # default scope.
        cls = OOD_SCORERS.module_dict[name]
    else:
        raise InvalidValueError(
            f'unknown scorer {name!r}; registered scorers: '
            f'{", ".join(sorted(OOD_SCORERS.module_dict))}')
    check_mapping_arguments(f'scorer {cls.name or cls.__name__!r}', args,
                            cls.__init__)
    return cls(**args)


def softmax_stable(logits: Tensor) -> Tensor:
    """Softmax over the class dimension in float32 or wider.

    Args:
        logits: Class scores, ``(N, C, ...)``; float16 / bfloat16 are cast
            to float32 first, so that the probabilities of near-ties do not
            round to the same value.

    Returns:
        Tensor: Probabilities of the shape of ``logits``, summing to 1 over
        dim 1.
    """
    return torch.softmax(logits.float() if logits.dtype in (
        torch.float16, torch.bfloat16) else logits, dim=1)
