"""A segmentor that says "unknown": a calibrated OOD decision per pixel.

:class:`OODSegmentor` wraps any mmseg segmentor and one calibrated scorer
(usually from a calibration file written by ``tools/calibrate_ood.py``, see
:mod:`mmseg_ood.formats.threshold_file`). Its ``predict`` runs the segmentor
once
with the scorer attached (:class:`~mmseg_ood.models.OODScoring`, so the
score map is aligned with ``pred_sem_seg``) and relabels every pixel whose
score is at or above the threshold (``score >= threshold``, the package's
convention; a NaN score counts as OOD, fail-safe) as ``ood_label`` - by
default a new class index ``num_classes``, named "unknown" in
``dataset_meta`` with a colour of its own, so that mmseg's
``SegLocalVisualizer`` draws it.

From a config (the plain model config nested under ``segmentor``)::

    custom_imports = dict(imports=['mmseg_ood'])
    model = dict(type='OODSegmentor', segmentor=<the plain model dict>,
                 calibration='work_dirs/calib/calibration.json')

From Python, around a model that is already built::

    model = OODSegmentor.wrap(init_model(config, ckpt), 'calibration.json',
                              checkpoint=ckpt)

Weights: the wrapper holds no parameters of its own, and its state dict is
the plain segmentor's (no ``segmentor.`` prefix, both ways), so a plain
checkpoint loads into it - ``mmseg_ood.apis.init_model(ood_config,
plain_ckpt)`` works, and what it saves loads into the plain model. The
calibration stays outside the checkpoint: it is a separate, hashed file.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS

from ...errors import InvalidTypeError, InvalidValueError
from ...formats.threshold_file import (OODCalibration, check_ood_label,
                                       check_threshold, decide_ood)
from ...utils.arguments import strict_arguments
from ..introspection import final_decode_head
from ..ood_scoring import OODScoring, build_scorers

__all__ = ['OODSegmentor', 'UNKNOWN_CLASS', 'UNKNOWN_COLORS',
           'with_unknown_class']

#: The name of the OOD class in ``dataset_meta``.
UNKNOWN_CLASS = 'unknown'
#: Colours (RGB, as mmseg palettes are) preferred for "unknown", in order;
#: the one farthest from every palette colour is used (see
#: :func:`unknown_color`). Not white: mmseg writes class names in white on
#: the class colour.
UNKNOWN_COLORS = ((255, 0, 255), (0, 255, 255), (255, 255, 0), (255, 0, 0),
                  (0, 0, 255), (0, 255, 0))
_PAD_COLOR = (0, 0, 0)


def _dark_enough(colors: np.ndarray) -> np.ndarray:
    """Leave out colours too light for white text."""
    return colors[(colors >= 204).sum(1) < 3]


def unknown_color(palette: Sequence) -> tuple:
    """The colour of "unknown": of :data:`UNKNOWN_COLORS`, the one whose
    nearest palette colour (or the black of padding) is farthest away, the
    first of equally far ones (a coarse RGB grid, steps of 51, without
    its lightest colours, if the palette holds them all). E.g. not
    magenta for Cityscapes-like palettes, whose sidewalk (244, 35, 232) is
    nearly magenta.

    Raises:
        ValueError: every candidate is in the palette.
    """
    used = np.array([tuple(int(v) for v in c) for c in palette] +
                    [_PAD_COLOR], np.float64)
    grid = np.arange(0, 256, 51)
    grid = np.stack(np.meshgrid(grid, grid, grid, indexing='ij'), -1)
    for candidates in (np.array(UNKNOWN_COLORS, np.float64),
                       _dark_enough(grid.reshape(-1, 3))):
        nearest = np.sqrt(((candidates[:, None] - used[None]) ** 2).sum(-1)
                          ).min(1)
        best = int(np.argmax(nearest))
        if nearest[best] > 0:
            return tuple(int(v) for v in candidates[best])
    raise InvalidValueError('no colour left for "unknown": the palette holds '
                            'every candidate colour')


def with_unknown_class(meta: Optional[dict], num_classes: int,
                       ood_label: int) -> dict:
    """``dataset_meta`` with the class "unknown" at index ``ood_label``.

    Classes and palette are first made exactly ``num_classes`` long (names
    ``'class_<i>'`` and a fixed random palette where the model has none,
    as a checkpoint without ``dataset_meta`` gives). If ``ood_label >=
    num_classes``, "unknown" is added at ``ood_label`` (indices in between,
    which predictions never hold, are padded as ``'(unused)'`` in black),
    in the colour :func:`unknown_color` picks (farthest from the palette), so
    that mmseg's visualizer - which draws only labels ``< len(classes)`` -
    draws it. If ``ood_label < num_classes`` OOD pixels merge into that
    class and the meta is returned unchanged.

    Args:
        meta: The model's ``dataset_meta`` (``classes``, ``palette``) or
            ``None``.
        num_classes: Number of classes the model predicts.
        ood_label: Label of OOD pixels.

    Returns:
        dict: A new dict (``meta`` is not modified).
    """
    meta = dict(meta or {})
    classes = list(meta.get('classes') or [])[:num_classes]
    classes += [f'class_{i}' for i in range(len(classes), num_classes)]
    palette = [list(c) for c in (meta.get('palette') or [])][:num_classes]
    if len(palette) < num_classes:
        # mmseg's BaseSegDataset also draws a random palette when none is
        # given; seeded here so that overlays are stable between runs
        gen = torch.Generator().manual_seed(42)
        extra = torch.randint(0, 256, (num_classes - len(palette), 3),
                              generator=gen)
        palette += extra.tolist()
    if ood_label >= num_classes:
        color = unknown_color(palette)
        pad = ood_label - num_classes
        classes += ['(unused)'] * pad + [UNKNOWN_CLASS]
        palette += [list(_PAD_COLOR)] * pad + [list(color)]
    meta.update(classes=tuple(classes), palette=palette)
    return meta


def _strip_segmentor_prefix(module, state_dict, prefix, local_metadata):
    """State-dict post hook: ``segmentor.x`` -> ``x``, so the wrapper saves
    the plain segmentor's keys."""
    inner = prefix + 'segmentor.'
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        for key in [k for k in metadata
                    if k == inner[:-1] or k.startswith(inner)]:
            new = prefix + key[len(inner):] if key != inner[:-1] else \
                prefix[:-1]
            metadata[new] = metadata.pop(key)


def _add_segmentor_prefix(module, state_dict, prefix, local_metadata, strict,
                          missing_keys, unexpected_keys, error_msgs):
    """Load-state-dict pre hook: a plain segmentor's ``x`` -> ``segmentor.x``
    (keys already prefixed are kept), so plain checkpoints load."""
    inner = prefix + 'segmentor.'
    own = (inner, prefix + 'data_preprocessor.')
    for key in [k for k in state_dict
                if k.startswith(prefix) and not k.startswith(own)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)
    metadata = getattr(state_dict, '_metadata', None)
    if metadata is not None:
        # metadata of the plain root ('' or prefix) becomes the segmentor's
        root = prefix[:-1]
        for key in [k for k in metadata
                    if (k == root or k.startswith(prefix))
                    and not k.startswith(own) and k != inner[:-1]]:
            rest = '' if key == root else key[len(prefix):]
            metadata[inner + rest if rest else inner[:-1]] = metadata[key]
            if key != root:
                del metadata[key]


@MODELS.register_module()
@strict_arguments
class OODSegmentor(BaseSegmentor):
    """A segmentor whose prediction marks OOD pixels as ``ood_label``.

    ``predict`` returns per image, besides mmseg's ``seg_logits``:

    - ``pred_sem_seg``: the segmentor's prediction with every OOD pixel
      (see below) set to ``ood_label``;
    - ``ood_score``: ``PixelData`` ``(1, H, W)`` float32, the calibrated
      scorer's map (higher = more OOD), aligned with ``pred_sem_seg``;
    - ``ood_mask``: ``PixelData`` ``(1, H, W)`` bool, the OOD pixels;
    - ``ood_scores``: ``{scorer name: Tensor (H, W)}``, as
      :class:`~mmseg_ood.models.OODScoring` fills it.

    A pixel is OOD where ``score >= threshold`` or the score is NaN: the
    decision is fail-safe, a NaN score (e.g. from a numerically broken
    input) is never silently in-distribution (the rule of
    :meth:`OODCalibration.decide
    <mmseg_ood.formats.threshold_file.OODCalibration.decide>`).

    The threshold and scorer come either from a calibration file (which
    also records the checkpoint it was made for: see
    :meth:`check_checkpoint`) or are given directly (``scorer`` +
    ``threshold``; nothing then ties them to the weights).

    ``decode_head`` (read-only) is the segmentor's, so that code reading
    ``model.decode_head`` (mmseg's ``init_model`` for a checkpoint without
    ``dataset_meta``) works on the wrapper; it is not a submodule of its
    own (the state dict holds it once).

    ``dataset_meta`` is the segmentor's with the class "unknown" at
    ``ood_label`` in a colour not in its palette
    (:func:`with_unknown_class`); setting it sets the segmentor's.

    The wrapper is for inference: ``loss`` raises (training would move the
    weights away from the calibration). Its state dict is the plain
    segmentor's, so plain checkpoints load into it (see the module
    docstring). The checkpoint is checked against the calibration where
    the file is known: :func:`mmseg_ood.apis.init_model`,
    :class:`~mmseg_ood.apis.OODInferencer`, :meth:`wrap` with
    ``checkpoint``; a ``load_from`` in mmengine's Runner is not checked.

    Args:
        segmentor: The plain segmentor: a config dict (as under ``model``
            in an mmseg config) or a built module.
        calibration: A calibration file (or its directory) or an
            :class:`~mmseg_ood.formats.threshold_file.OODCalibration`. Excludes
            ``threshold``.
        scorer: Without a calibration: the scorer (a name, config dict or
            scorer instance, e.g. ``dict(type='energy')``). With one: must
            be the calibration's scorer (checked, see
            :meth:`OODCalibration.check_matches
            <mmseg_ood.formats.threshold_file.OODCalibration.check_matches>`).
        threshold: Without a calibration: the decision threshold
            (``score >= threshold`` is OOD), finite.
        ood_label: Label of OOD pixels in ``pred_sem_seg``, in ``[0,
            255]``. ``None``: the calibration's ``ood_label``, else
            ``num_classes`` (a new class). A label below ``num_classes``
            merges OOD pixels into that class.
        train_cfg / pretrained: Replace the segmentor config's if not
            ``None`` (mmseg's ``init_model`` sets both to ``None`` on the
            outer model, which then leaves the segmentor's alone).

    Raises:
        ValueError: Neither ``calibration`` nor ``scorer`` +
            ``threshold``, or both ``calibration`` and ``threshold``; a
            non-finite threshold; ``ood_label`` out of range.
        CalibrationMismatchError: The calibration records another number
            of classes than the segmentor's, or another scorer than
            ``scorer``.
        UnsupportedScorerError: The scorer cannot run on this segmentor.

    Example:
        >>> model = OODSegmentor.wrap(init_model(cfg, ckpt), 'calib.json',
        ...                           checkpoint=ckpt)
        >>> result = inference_model(model, 'street.png')
        >>> unknown = result.pred_sem_seg.data == model.ood_label
    """

    def __init__(self,
                 segmentor: Union[dict, nn.Module],
                 calibration: Union[None, str, OODCalibration] = None,
                 scorer: Union[None, str, dict] = None,
                 threshold: Optional[float] = None,
                 ood_label: Optional[int] = None,
                 train_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None):
        if isinstance(segmentor, dict):
            segmentor = dict(segmentor)
            if train_cfg is not None:
                segmentor['train_cfg'] = train_cfg
            if pretrained is not None:
                segmentor['pretrained'] = pretrained
            segmentor = MODELS.build(segmentor)
        elif not isinstance(segmentor, nn.Module):
            raise InvalidTypeError(
                '`segmentor` must be a model config dict or an '
                f'nn.Module, got {type(segmentor).__name__}')
        calibration = self._calibration(calibration, scorer, threshold)
        # the segmentor's own preprocessor: test_step normalises and pads
        # exactly as for the plain model
        super().__init__(data_preprocessor=segmentor.data_preprocessor)
        self.segmentor = segmentor
        self.num_classes = getattr(segmentor, 'num_classes', None) or \
            final_decode_head(segmentor).num_classes
        self.calibration = calibration
        if calibration is not None:
            calibration.check_num_classes(self.num_classes,
                                          type(segmentor).__name__)
            scorers = OrderedDict(
                [(calibration.scorer_name, calibration.build_scorer())])
            self.threshold = calibration.threshold
        else:
            scorers = build_scorers([scorer])
            self.threshold = float(threshold)
        self.scorer_name = next(iter(scorers))
        # validates the scorer against the head now, attached per predict
        self._scoring = OODScoring(segmentor, scorers, strict=True)
        if ood_label is None and calibration is not None:
            ood_label = calibration.ood_label
        if ood_label is None:
            ood_label = self.num_classes
        self.ood_label = check_ood_label(ood_label, '`ood_label`')
        self.register_state_dict_post_hook(_strip_segmentor_prefix)
        self.register_load_state_dict_pre_hook(_add_segmentor_prefix)

    @property
    def wrapped_segmentor(self) -> nn.Module:
        """The plain segmentor this model wraps (the protocol of
        :func:`~mmseg_ood.models.introspection.unwrap_segmentor`)."""
        return self.segmentor

    @staticmethod
    def _calibration(calibration, scorer, threshold
                     ) -> Optional[OODCalibration]:
        if calibration is not None:
            if threshold is not None:
                raise InvalidValueError(
                    'give either `calibration` or `scorer` + '
                    '`threshold`, not both (got calibration='
                    f'{calibration!r}, scorer={scorer!r}, '
                    f'threshold={threshold!r})')
            if isinstance(calibration, str):
                calibration = OODCalibration.load(calibration)
            elif not isinstance(calibration, OODCalibration):
                raise InvalidTypeError(
                    '`calibration` must be a file name or an '
                    'OODCalibration, got '
                    f'{type(calibration).__name__}')
            if scorer is not None:  # only the calibrated scorer fits
                calibration.check_matches(scorer=scorer)
            return calibration
        if scorer is None or threshold is None:
            raise InvalidValueError(
                'OODSegmentor needs `calibration` (a file from '
                'tools/calibrate_ood.py) or both `scorer` and '
                f'`threshold`; got scorer={scorer!r}, '
                f'threshold={threshold!r}')
        check_threshold(threshold, '`threshold`')
        return None

    @classmethod
    def wrap(cls, model: nn.Module,
             calibration: Union[None, str, OODCalibration] = None,
             checkpoint: Optional[str] = None, **kwargs) -> 'OODSegmentor':
        """Wrap an already built segmentor (e.g. from ``init_model``).

        The wrapper shares the model's modules (no copy) and takes over its
        ``cfg`` (so mmseg's ``inference_model`` and the inferencers find the
        test pipeline), its device and eval mode.

        Args:
            model: The plain segmentor.
            calibration: As in :class:`OODSegmentor`.
            checkpoint: The checkpoint file the model was loaded from; if
                given (and a calibration is), it is checked against the
                calibration (:meth:`check_checkpoint`).
            **kwargs: ``scorer``, ``threshold``, ``ood_label``.

        Returns:
            OODSegmentor: The wrapper.

        Raises:
            CalibrationMismatchError: The calibration was made for another
                checkpoint; the message names both.
        """
        if isinstance(model, cls):
            raise InvalidTypeError('the model is an OODSegmentor already')
        wrapper = cls(segmentor=model, calibration=calibration, **kwargs)
        if checkpoint is not None:
            wrapper.check_checkpoint(checkpoint)
        if hasattr(model, 'cfg'):
            wrapper.cfg = model.cfg
        wrapper.train(model.training)
        return wrapper

    def check_checkpoint(self, checkpoint: str) -> None:
        """Refuse a checkpoint the calibration was not made for (by the
        SHA-256 of its weights, or of the file for a schema-1 calibration;
        nothing to check without a calibration).

        Raises:
            CalibrationMismatchError: naming both checkpoints.
        """
        if self.calibration is not None:
            self.calibration.check_matches(checkpoint=checkpoint)

    @property
    def decode_head(self) -> nn.Module:
        """The segmentor's decode head (read-only; not registered again, so
        the state dict holds it once)."""
        return self.segmentor.decode_head

    # dataset_meta -----------------------------------------------------------
    @property
    def dataset_meta(self) -> dict:
        """The segmentor's ``dataset_meta`` with "unknown" at
        ``ood_label`` (see :func:`with_unknown_class`)."""
        meta = getattr(self.segmentor, 'dataset_meta', None) or {}
        if not meta.get('classes') and self.calibration is not None and \
                self.calibration.model.get('classes'):
            meta = dict(meta, classes=self.calibration.model['classes'])
        return with_unknown_class(meta, self.num_classes, self.ood_label)

    @dataset_meta.setter
    def dataset_meta(self, meta: dict) -> None:
        self.segmentor.dataset_meta = meta

    # segmentor interface ----------------------------------------------------
    def predict(self, inputs: torch.Tensor, data_samples=None) -> list:
        """The segmentor's ``predict`` with the OOD decision applied.

        Args:
            inputs: ``(N, 3, H, W)`` preprocessed images.
            data_samples: Their ``SegDataSample``\\ s (metainfo), or
                ``None``.

        Returns:
            list[SegDataSample]: With ``pred_sem_seg`` (OOD pixels =
            ``ood_label``), ``seg_logits``, ``ood_score``, ``ood_mask`` and
            ``ood_scores``.
        """
        if 'postprocess_result' in vars(self.segmentor):
            # an OODScoring attached to the plain segmentor (e.g. through
            # unwrap_segmentor(self)): two would append score channels to
            # one head's logits, each taking the other's for classes
            raise RuntimeError(
                'another OODScoring is attached to the segmentor of this '
                f'OODSegmentor; its predictions carry `ood_scores` of '
                f'{self.scorer_name!r} already: attach other scorers to the '
                'plain segmentor (`model.segmentor`) and run that')
        with self._scoring:
            results = self.segmentor(inputs, data_samples, mode='predict')
        for sample in results:
            score = sample.ood_scores[self.scorer_name]
            mask = self.decide(score)
            # argmax made a fresh tensor: relabel in place, no copy
            pred = sample.pred_sem_seg.data.masked_fill_(mask, self.ood_label)
            sample.set_data(dict(pred_sem_seg=PixelData(data=pred),
                                 ood_score=PixelData(data=score[None]),
                                 ood_mask=PixelData(data=mask[None])))
        return results

    def decide(self, score: torch.Tensor) -> torch.Tensor:
        """The OOD mask of a score map: ``score >= threshold`` or NaN
        (fail-safe; :func:`~mmseg_ood.formats.threshold_file.decide_ood`, the
        rule of ``OODCalibration.decide`` too)."""
        return decide_ood(score, self.threshold)

    def loss(self, inputs, data_samples):
        raise NotImplementedError(
            'OODSegmentor is for inference: train the plain segmentor '
            '(a calibration holds only for the weights it was made for)')

    def _forward(self, inputs, data_samples=None):
        return self.segmentor._forward(inputs, data_samples)

    def extract_feat(self, inputs):
        return self.segmentor.extract_feat(inputs)

    def encode_decode(self, inputs, batch_data_samples):
        return self.segmentor.encode_decode(inputs, batch_data_samples)
