"""ONNX export of a segmentor with its calibrated OOD scorer and threshold.

One graph does what ``mmseg_ood`` does in PyTorch for one calibration file
(:class:`~mmseg_ood.formats.threshold_file.OODCalibration`)::

    img (N, 3, H, W) float32, raw BGR in [0, 255] (cv2.imread's channels)
      -> mmseg's data preprocessing (BGR -> RGB, (x - mean) / std, the
         test-time padding of ``data_preprocessor.test_cfg``)
      -> EncoderDecoder.inference (whole; or slide for one fixed size):
         backbone, neck, decode head; the scorer runs on the head's class
         scores (and embeddings) at the head's resolution, and its map is
         resized to the input together with the logits, exactly as
         :class:`~mmseg_ood.models.OODScoring` does in ``predict``
      -> pred     (N, H, W) int64: argmax class (``sigmoid > threshold``
                  for a one-channel binary head), OOD pixels set to
                  ``ood_label`` (the segmentor's ``num_classes`` - 2 for
                  a binary head - when the calibration says ``null``)
         score    (N, H, W) float32: the calibrated scorer's map, higher =
                  more OOD
         ood_mask (N, H, W) uint8: 1 where ``score >= threshold`` or the
                  score is NaN

This is the decision :class:`~mmseg_ood.models.OODSegmentor` makes in
PyTorch, and the check (:func:`check_onnx`) compares against that very
deployment path (``OODSegmentor.wrap(model, calibration)``'s
``test_step``). A NaN score counts as OOD (fail-safe: a pixel the scorer
cannot score is not trusted as in-distribution), so ``ood_mask`` is 1 and
``pred`` is ``ood_label`` there; ``score`` keeps the NaN. The check fails
on any NaN or Inf in one output where the other has a different value.

The graph is that of mmseg's inference at the input's own resolution: the
test pipeline's ``Resize`` is not in it (resize before, as the pipeline
does, if the model expects a fixed scale).

Exporter: by default torch's TorchScript-based exporter
(``torch.onnx.export(..., dynamo=False)``). It traces the Python code, so
mmseg's shape bookkeeping (``img_shape`` metadata, ``resize(size=...)``)
becomes shape arithmetic in the graph: batch, height and width are all
dynamic with ``dynamic=True``, and exporting the synthetic DeepLabV3+ takes
about 1 s. torch 2.13 marks it deprecated; ``exporter='dynamo'`` (the
torch.export-based exporter, needs ``onnxscript``) gives the same outputs
here, but takes about 15x longer and specializes the batch size (mmseg
builds one metadata dict per image in a Python loop), so its dynamic export
has dynamic height and width at batch 1.

Measured on the synthetic configs (CPU, onnxruntime 1.31.1): DeepLabV3+
R18 and Mask2Former R18 (mmcv's deformable attention runs its PyTorch
``grid_sample`` path on CPU, which ONNX has) export with every scorer
tried, SML with boundary suppression and dilated smoothing included
(its fitted statistics become constants), and match PyTorch to about
1e-6 at sizes other than the one traced.

What cannot be exported, and the error it gives (:class:`OODExportError`,
a ``ValueError``):

* slide inference (``test_cfg.mode='slide'``) with dynamic sizes: the
  windows are a Python loop over the input size, unrolled for one size -
  export with a fixed ``shape`` or set ``model.test_cfg.mode='whole'``;
* a scorer the model cannot provide inputs for (an embedding scorer on a
  head without ``conv_seg``, ``background`` without an IBE / SCrIBE head);
* any component ``torch.onnx`` rejects (an operator without an ONNX
  equivalent): its failure is wrapped in an error naming the config, the
  final decode head, the scorer and the failing operator.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import (DamagedFileError, InvalidValueError, MissingInputError,
                      UserError)
from ..formats.threshold_file import (OODCalibration, check_ood_label,
                                      check_threshold)
from ..models import OODScoring, OODSegmentor
from ..models.introspection import (describe_head, final_decode_head,
                                    unwrap_runtime_wrappers, unwrap_segmentor)
from ..utils.checkpoint import (checkpoint_meta, load_checkpoint_file,
                                state_dict_sha256)
from ..utils.config import resolve_config_path
from ..utils.extras import require_extra
from ..utils.files import atomic_output, check_output_path

__all__ = ['OODExportError', 'OnnxCheckError', 'ExportableOODSegmentor',
           'OnnxCheck',
           'export_onnx', 'export_module', 'check_onnx',
           'compare_outputs', 'deployment_model', 'dynamic_input_axes',
           'reference_outputs', 'OUTPUT_NAMES', 'EXPORTERS']

#: The graph's outputs, in order.
OUTPUT_NAMES = ('pred', 'score', 'ood_mask')
#: The graph's input.
INPUT_NAME = 'img'
#: The exporters of ``torch.onnx`` offered (see the module docstring).
EXPORTERS = ('torchscript', 'dynamo')
#: The ONNX opset written (onnxruntime 1.31 runs up to opset 23).
DEFAULT_OPSET = 17
#: Tolerance of the check, on ``|score_onnx - score_torch|`` and the band
#: around the threshold in which a mask pixel may legitimately flip.
SCORE_TOLERANCE = 1e-4


class OODExportError(InvalidValueError):
    """A model, scorer or setting that cannot be exported to ONNX."""


class OnnxCheckError(OODExportError):
    """The exported graph does not give PyTorch's outputs
    (:class:`OnnxCheck` failed); ``check`` holds the comparison. The file
    was not written.

    Args:
        message: The error message (what differs, and by how much).
        check: The failed comparison of ONNX Runtime's outputs with
            PyTorch's; kept as the ``check`` attribute.
    """

    def __init__(self, message: str, check: 'OnnxCheck'):
        super().__init__(message)
        self.check = check


def _shape_pair(shape, name='shape') -> Optional[Tuple[int, int]]:
    if shape is None:
        return None
    shape = tuple(shape)
    if len(shape) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1
            for v in shape):
        raise InvalidValueError(f'`{name}` must be two ints (H, W) >= 1, got '
                                f'{shape!r}')
    return shape


def _ood_segmentor_in(model: nn.Module) -> Optional[OODSegmentor]:
    """The ``OODSegmentor`` a model is (inside DDP / TTA wrappers), or
    ``None``; not :func:`unwrap_segmentor`, which looks through it."""
    model = unwrap_runtime_wrappers(model)
    return model if isinstance(model, OODSegmentor) else None


def _num_classes(segmentor: nn.Module) -> int:
    """The classes the segmentor predicts, as OODSegmentor counts them
    (2 for a binary head with one output channel)."""
    return int(getattr(segmentor, 'num_classes', None)
               or final_decode_head(segmentor).num_classes)


class ExportableOODSegmentor(nn.Module):
    """A segmentor, one scorer and its threshold as one traceable module.

    ``forward(img) -> (pred, score, ood_mask)`` (see the module docstring).
    The model's own code runs: its ``data_preprocessor`` settings
    (``bgr_to_rgb``, ``mean``, ``std``, test-time padding), then
    ``segmentor.inference`` with :class:`~mmseg_ood.models.OODScoring`
    attached and active, so that the score map is computed and resized by
    the very code of :func:`~mmseg_ood.apis.score_image`; then mmseg's
    post-processing (padding removal, argmax; ``sigmoid > threshold`` for a
    one-channel head), and :class:`~mmseg_ood.models.OODSegmentor`'s
    decision (``score >= threshold`` or a NaN score is OOD).

    Args:
        segmentor: An mmseg ``EncoderDecoder`` (or subclass) in eval mode;
            the plain segmentor of an ``OODSegmentor`` is taken (its own
            scorer and threshold are not: :func:`export_onnx` checks them
            against the calibration).
        scorer: The scorer (an instance, name or config dict).
        threshold: ``score >= threshold`` (or a NaN score) is OOD.
        ood_label: Label of OOD pixels in ``pred``, in ``[0, 255]``
            (``None``: the segmentor's ``num_classes``, as in
            ``OODSegmentor``; 2 for a one-channel binary head).
        fixed_shape: The one input size ``(H, W)`` the graph is exported
            for, or ``None`` for dynamic sizes (refused for slide
            inference).

    Raises:
        OODExportError: slide inference without ``fixed_shape``; a scorer
            the model cannot support; an unknown test mode.
        ValueError: a non-finite ``threshold``; ``ood_label`` not in
            ``[0, 255]``.

    Shape:
        ``img``: ``(N, 3, H, W)`` float32 BGR in ``[0, 255]``;
        ``pred``: ``(N, H, W)`` int64; ``score``: ``(N, H, W)`` float32;
        ``ood_mask``: ``(N, H, W)`` uint8.
    """

    def __init__(self, segmentor: nn.Module, scorer, threshold: float,
                 ood_label: Optional[int] = None,
                 fixed_shape: Optional[Sequence[int]] = None):
        super().__init__()
        segmentor = unwrap_segmentor(segmentor)
        self.segmentor = segmentor
        self.fixed_shape = _shape_pair(fixed_shape, 'fixed_shape')
        self.threshold = check_threshold(threshold)
        self.head = final_decode_head(segmentor)
        self.head_name = describe_head(self.head)
        # channels of the logits (1 for a binary sigmoid head) and classes
        # predicted (2 then): the default OOD label is a new class index,
        # as in OODSegmentor, never the binary head's foreground
        self.out_channels = int(segmentor.out_channels)
        self.num_classes = _num_classes(segmentor)
        ood_label = check_ood_label(ood_label)
        self.ood_label = self.num_classes if ood_label is None else \
            ood_label
        test_cfg = getattr(segmentor, 'test_cfg', None) or {}
        self.mode = test_cfg.get('mode', 'whole')
        if self.mode not in ('whole', 'slide'):
            raise OODExportError(
                f"model.test_cfg.mode must be 'whole' or 'slide', got "
                f'{self.mode!r}')
        if self.mode == 'slide' and self.fixed_shape is None:
            raise OODExportError(
                "model.test_cfg.mode='slide' cannot be exported with "
                'dynamic input sizes: the sliding windows are a Python loop '
                'over the input size, unrolled for one size when traced. '
                'Export with a fixed size (--shape H W, without --dynamic), '
                "or set model.test_cfg.mode='whole' (--cfg-options "
                'model.test_cfg.mode=whole)')
        # strict: an unsupported scorer raises UnsupportedScorerError,
        # which names the scorer and the head
        from ..scorers import UnsupportedScorerError
        try:
            self.scoring = OODScoring(segmentor, [scorer], strict=True)
        except UnsupportedScorerError as e:
            raise OODExportError(f'cannot export: {e}') from None
        self.scorer_name = self.scoring.names[0]
        self.scorer = self.scoring.scorers[self.scorer_name]
        pre = segmentor.data_preprocessor
        self.bgr_to_rgb = bool(getattr(pre, 'channel_conversion', False))
        self.normalize = bool(getattr(pre, '_enable_normalize', False))
        if self.normalize:
            self.register_buffer('mean', pre.mean.detach().clone().float())
            self.register_buffer('std', pre.std.detach().clone().float())
        pad_cfg = getattr(pre, 'test_cfg', None) or {}
        self.pad_size = pad_cfg.get('size', None)
        self.pad_size_divisor = pad_cfg.get('size_divisor', None)
        self.pad_val = float(getattr(pre, 'pad_val', 0))

    # the graph -----------------------------------------------------------
    def _preprocess(self, img):
        """What ``SegDataPreProcessor`` does at test time, batched."""
        x = img
        if self.bgr_to_rgb and x.shape[1] == 3:
            x = x[:, [2, 1, 0]]
        x = x.float()
        if self.normalize:
            x = (x - self.mean) / self.std
        h, w = x.shape[2], x.shape[3]
        pad_h = pad_w = 0
        if self.pad_size is not None:
            # stack_batch pads to `size` (an input larger than it would
            # make a negative pad, as in mmseg)
            pad_h, pad_w = self.pad_size[0] - h, self.pad_size[1] - w
        elif self.pad_size_divisor is not None:
            d = self.pad_size_divisor
            pad_h, pad_w = (d - h % d) % d, (d - w % d) % d
        if self.pad_size is not None or self.pad_size_divisor is not None:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=self.pad_val)
        return x, pad_h, pad_w

    def forward(self, img: torch.Tensor):
        n, _, h, w = img.shape
        x, _, _ = self._preprocess(img)
        # what mmseg's metadata holds, as sizes of the traced tensors:
        # dynamic in the graph
        shape = x.shape[2:]
        meta = dict(ori_shape=img.shape[2:], img_shape=shape,
                    pad_shape=shape)
        seg = self.segmentor
        # the score channel is appended where the head hands its class
        # scores to mmseg's post-processing
        with self.scoring.scores_appended():
            out = seg.inference(x, [dict(meta) for _ in range(n)])
        c = self.out_channels
        if out.shape[1] != c + 1:
            raise OODExportError(
                f'{type(seg).__name__}.inference did not pass the class '
                f'scores of {self.head_name} through predict_by_feat; the '
                f'score of {self.scorer_name!r} cannot be attached')
        out = out[:, :, :h, :w]  # padding removal (padding is bottom/right)
        logits, score = out[:, :c], out[:, c].float()
        if c > 1:
            pred = logits.argmax(dim=1)
        else:
            pred = (logits[:, 0].sigmoid() > self.head.threshold).long()
        # OODSegmentor's decision; a NaN score is OOD (fail-safe)
        mask = (score >= self.threshold) | torch.isnan(score)
        pred = torch.where(mask, torch.full_like(pred, self.ood_label), pred)
        return pred, score, mask.to(torch.uint8)

    def attach(self) -> 'ExportableOODSegmentor':
        """Install the score capture (done by :func:`export_onnx`)."""
        self.scoring.attach()
        return self

    def detach(self) -> None:
        """Remove the score capture from the segmentor."""
        self.scoring.detach()

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.detach()


# reference -----------------------------------------------------------------
def deployment_model(model: nn.Module,
                     scorer: Union[str, dict, OODCalibration, object],
                     threshold: Optional[float] = None,
                     ood_label: Optional[int] = None) -> OODSegmentor:
    """The PyTorch deployment the ONNX graph stands for:
    ``OODSegmentor.wrap`` of the plain segmentor.

    Args:
        model: The segmentor (an ``OODSegmentor`` is unwrapped first: the
            decision is the one given here).
        scorer: An :class:`OODCalibration` (then ``threshold`` must be
            ``None`` or its own), or a scorer (instance, name or config
            dict) with ``threshold``.
        threshold: ``score >= threshold`` is OOD (without a calibration).
        ood_label: Label of OOD pixels (``None``: the calibration's, else
            ``num_classes``).

    Returns:
        OODSegmentor: sharing the model's modules.
    """
    seg = unwrap_segmentor(model)
    if isinstance(scorer, OODCalibration):
        if threshold is not None and \
                check_threshold(threshold) != scorer.threshold:
            raise InvalidValueError(f'threshold {threshold!r} is not the '
                                    f'calibration\'s ({scorer.threshold!r})')
        return OODSegmentor.wrap(seg, scorer, ood_label=ood_label)
    return OODSegmentor.wrap(seg, scorer=scorer,
                             threshold=check_threshold(threshold),
                             ood_label=ood_label)


def reference_outputs(model: nn.Module, scorer, threshold: Optional[float],
                      images: np.ndarray, ood_label: Optional[int] = None):
    """The PyTorch reference: the deployment path, ``test_step`` of
    :func:`deployment_model` (``OODSegmentor.wrap``: mmseg's data
    preprocessor, ``predict``, ``postprocess_result``, the OOD decision),
    one image at a time.

    Args:
        model: The segmentor.
        scorer: An :class:`OODCalibration` (``threshold`` ``None``), or the
            scorer (instance, name or config dict).
        threshold: ``score >= threshold`` is OOD (without a calibration).
        images: ``(N, H, W, 3)`` BGR images (uint8 or float).
        ood_label: Label of OOD pixels (``None``: the calibration's, else
            ``num_classes``).

    Returns:
        tuple: ``pred_sem_seg`` ``(N, H, W)`` int64 (OOD pixels set to
        ``ood_label``), ``ood_score`` ``(N, H, W)`` float32, ``ood_mask``
        ``(N, H, W)`` uint8 of the deployment's data samples, as numpy
        arrays.
    """
    from mmseg.structures import SegDataSample
    wrapper = deployment_model(model, scorer, threshold, ood_label)
    preds, scores, masks = [], [], []
    with torch.no_grad():
        for img in images:
            h, w = img.shape[:2]
            sample = SegDataSample(metainfo=dict(
                ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w)))
            inputs = torch.from_numpy(
                np.ascontiguousarray(img.transpose(2, 0, 1)))
            out = wrapper.test_step(dict(inputs=[inputs],
                                         data_samples=[sample]))[0]
            preds.append(out.pred_sem_seg.data[0].long().numpy())
            scores.append(out.ood_score.data[0].float().numpy())
            masks.append(out.ood_mask.data[0].numpy().astype(np.uint8))
    return np.stack(preds), np.stack(scores), np.stack(masks)


# check ----------------------------------------------------------------------
def compare_outputs(onnx_outputs: Sequence[np.ndarray],
                    torch_outputs: Sequence[np.ndarray], threshold: float,
                    tolerance: float = SCORE_TOLERANCE) -> dict:
    """Compare ``(pred, score, ood_mask)`` of onnxruntime and PyTorch.

    Non-finite scores are compared as values: a NaN facing a NaN, or an
    Inf facing the same Inf, agrees; a NaN or Inf facing anything else is
    a ``nonfinite_mismatch`` and makes ``max_score_diff`` ``inf`` (never
    skipped, as ``nanmax`` would).

    Args:
        onnx_outputs / torch_outputs: ``(pred, score, ood_mask)`` each
            ``(N, H, W)``.
        threshold: The decision threshold.
        tolerance: Score tolerance, and the band around the threshold in
            which mask flips are counted as near-threshold flips.

    Returns:
        dict: The fields of :class:`OnnxCheck` but the timings.
    """
    pred_o, score_o, mask_o = (np.asarray(v) for v in onnx_outputs)
    pred_t, score_t, mask_t = (np.asarray(v) for v in torch_outputs)
    if not (score_o.shape == score_t.shape == pred_o.shape == pred_t.shape
            == mask_o.shape == mask_t.shape):
        raise InvalidValueError(
            'outputs of different shapes: ONNX '
            f'{[v.shape for v in (pred_o, score_o, mask_o)]}'
            ', PyTorch '
            f'{[v.shape for v in (pred_t, score_t, mask_t)]}')
    a, b = score_o.astype(np.float64), score_t.astype(np.float64)
    finite = np.isfinite(a) & np.isfinite(b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    nonfinite = int((~finite & ~same).sum())
    diff = np.abs(a - b)[finite]
    max_diff = float(diff.max()) if diff.size else 0.0
    if nonfinite:
        max_diff = math.inf
    near = np.abs(b - threshold) <= tolerance  # False where b is NaN
    flips = mask_o.astype(bool) != mask_t.astype(bool)
    pred_diff = pred_o != pred_t
    return dict(
        shape=tuple(int(v) for v in score_t.shape),
        max_score_diff=max_diff, nonfinite_mismatch=nonfinite,
        mask_mismatch=int((flips & ~near).sum()),
        near_threshold_flips=int((flips & near).sum()),
        near_threshold_pixels=int(near.sum()),
        pred_mismatch=int((pred_diff & ~(flips & near)).sum()),
        ood_fraction=float(mask_t.astype(bool).mean()) if mask_t.size
        else 0.0,
        tolerance=float(tolerance))


@dataclass
class OnnxCheck:
    """onnxruntime's outputs against PyTorch's deployment
    (``OODSegmentor``) on the same images.

    Attributes:
        shape: ``(N, H, W)`` of the images checked.
        max_score_diff: ``max |score_onnx - score_torch|`` over pixels
            finite on both sides; ``inf`` if there is a non-finite
            mismatch.
        nonfinite_mismatch: Pixels where one score is NaN or Inf and the
            other is not the same value (must be 0).
        mask_mismatch: Mask pixels that differ although the reference
            score is farther than ``tolerance`` from the threshold (or
            NaN) (must be 0).
        near_threshold_flips: Mask pixels that differ with the reference
            score within ``tolerance`` of the threshold (a legitimate flip
            under float rounding; reported, not failed).
        near_threshold_pixels: Pixels whose reference score lies within
            ``tolerance`` of the threshold (flipped or not).
        pred_mismatch: ``pred`` pixels that differ outside the near-
            threshold flips (must be 0).
        ood_fraction: Fraction of OOD pixels in the reference mask.
        tolerance: The tolerance used.
        onnx_seconds / torch_seconds: Wall time of the two runs (a single
            run, not a benchmark: see ``benchmarks/onnx_latency.py``).
    """
    shape: Tuple[int, int, int]
    max_score_diff: float
    mask_mismatch: int
    near_threshold_flips: int
    near_threshold_pixels: int
    pred_mismatch: int
    ood_fraction: float
    tolerance: float
    nonfinite_mismatch: int = 0
    onnx_seconds: float = 0.0
    torch_seconds: float = 0.0
    passed: bool = field(init=False)

    def __post_init__(self):
        self.passed = bool(self.max_score_diff <= self.tolerance
                           and self.nonfinite_mismatch == 0
                           and self.mask_mismatch == 0
                           and self.pred_mismatch == 0)

    def summary(self) -> str:
        n, h, w = self.shape
        return (f'check on {n} image(s) {h}x{w}: max |score diff| '
                f'{self.max_score_diff:.3g} (tolerance {self.tolerance:g}), '
                f'NaN/Inf mismatches {self.nonfinite_mismatch}, '
                f'mask mismatches {self.mask_mismatch}, near-threshold '
                f'flips {self.near_threshold_flips} (of '
                f'{self.near_threshold_pixels} pixels within '
                f'{self.tolerance:g} of the threshold), pred mismatches '
                f'{self.pred_mismatch}, OOD fraction '
                f'{self.ood_fraction:.4f} -> '
                + ('PASSED' if self.passed else 'FAILED'))

    def to_dict(self) -> dict:
        return asdict(self)


def _session(path: str, threads: Optional[int] = None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def check_onnx(onnx_path: str, model: nn.Module, scorer,
               threshold: Optional[float], images: np.ndarray,
               ood_label: Optional[int] = None,
               tolerance: float = SCORE_TOLERANCE) -> OnnxCheck:
    """Run ``onnx_path`` with onnxruntime (CPU) on ``images`` and compare
    (:func:`compare_outputs`) with :func:`reference_outputs`, the PyTorch
    deployment (``OODSegmentor.wrap(model, calibration)``).

    Args:
        onnx_path: The exported file.
        model: The segmentor it was exported from.
        scorer: The :class:`OODCalibration` exported (``threshold``
            ``None``), or the scorer (instance, name or config dict).
        threshold: The threshold (without a calibration).
        images: ``(N, H, W, 3)`` BGR images.
        ood_label: As in the export.
        tolerance: Score tolerance, and the band around the threshold in
            which mask flips are counted as near-threshold flips.

    Returns:
        OnnxCheck
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3:
        raise InvalidValueError('`images` must be (N, H, W, 3) BGR, got shape '
                                f'{images.shape}')
    if isinstance(scorer, OODCalibration) and threshold is None:
        threshold = scorer.threshold
    t0 = time.perf_counter()
    reference = reference_outputs(model, scorer, threshold, images,
                                  ood_label)
    t1 = time.perf_counter()
    sess = _session(onnx_path)
    feed = {INPUT_NAME: np.ascontiguousarray(
        images.transpose(0, 3, 1, 2)).astype(np.float32)}
    outputs = sess.run(list(OUTPUT_NAMES), feed)
    t2 = time.perf_counter()
    try:
        fields = compare_outputs(outputs, reference, threshold, tolerance)
    except ValueError as e:
        raise RuntimeError(f'{onnx_path}: {e}') from None
    return OnnxCheck(**fields, onnx_seconds=t2 - t1, torch_seconds=t1 - t0)


# export ---------------------------------------------------------------------
def _default_shape(cfg) -> Optional[Tuple[int, int]]:
    """``(H, W)`` of the test pipeline's ``Resize`` scale, if it has one."""
    pipeline = cfg.get('test_pipeline') or []
    for t in pipeline:
        if t.get('type') == 'Resize' and t.get('scale') is not None:
            w, h = t['scale']  # mmcv's scale is (w, h)
            return int(h), int(w)
    return None


def _load_image(path: str, shape: Optional[Tuple[int, int]]) -> np.ndarray:
    """A BGR image for the check, resized to ``shape`` (``(H, W)``) when
    given.

    Raises:
        MissingInputError: no such file.
        DamagedFileError: a folder, or a file OpenCV cannot read as an
            image (text, truncated, another format).
    """
    import cv2
    if not osp.exists(path):
        raise MissingInputError(f'--check-image {path} not found')
    if osp.isdir(path):
        raise DamagedFileError(f'--check-image {path} is a folder; give an '
                               'image file')
    with open(path, 'rb'):  # a PermissionError names the file
        pass
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise DamagedFileError(
            f'--check-image {path} is not an image OpenCV can read '
            '(truncated, or another kind of file?)')
    if shape is not None and img.shape[:2] != tuple(shape):
        img = cv2.resize(img, (shape[1], shape[0]),
                         interpolation=cv2.INTER_LINEAR)
    return img


def _check_opset(opset, exporter: str) -> int:
    """``opset`` as an int the exporter writes; else a named error."""
    try:
        from torch.onnx._constants import (ONNX_MIN_OPSET,
                                           ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
        low, high = ONNX_MIN_OPSET, ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
    except ImportError:  # another torch: let torch.onnx judge the top
        low, high = 7, None
    if exporter == 'dynamo':
        high = None  # onnxscript has its own range
    if isinstance(opset, bool) or not isinstance(opset, int) or \
            opset < low or (high is not None and opset > high):
        upper = f' to {high}' if high is not None else ' or more'
        raise InvalidValueError(
            f'--opset must be an ONNX opset from {low}{upper} for the '
            f'{exporter} exporter, got {opset!r}')
    return opset


def dynamic_input_axes(exporter: str, dynamic: bool) -> Tuple[str, ...]:
    """The input axes a ``dynamic`` export leaves dynamic: ``('N', 'H',
    'W')`` with the TorchScript exporter, ``('H', 'W')`` with dynamo
    (batch fixed at 1), ``()`` for a fixed export.

    Args:
        exporter: ``'torchscript'`` or ``'dynamo'``, the ``torch.onnx``
            exporter used.
        dynamic: Whether the export has dynamic input axes.
    """
    if not dynamic:
        return ()
    return ('N', 'H', 'W') if exporter == 'torchscript' else ('H', 'W')


def _decision_differences(wrapper: OODSegmentor,
                          calibration: OODCalibration) -> list:
    """How an ``OODSegmentor``'s own decision differs from
    ``calibration``'s (empty: the same)."""
    out = []
    own = wrapper.calibration
    if own is not None:
        if (own.scorer_name, own.scorer_config, own.scorer_state) != (
                calibration.scorer_name, calibration.scorer_config,
                calibration.scorer_state):
            out.append(f'scorer {own.scorer_name!r} {own.scorer_config} '
                       f'vs {calibration.scorer_name!r} '
                       f'{calibration.scorer_config}'
                       + (' (or its fitted state)'
                          if own.scorer_config == calibration.scorer_config
                          else ''))
    elif wrapper.scorer_name != calibration.scorer_name:
        out.append(f'scorer {wrapper.scorer_name!r} vs '
                   f'{calibration.scorer_name!r}')
    if wrapper.threshold != calibration.threshold:
        out.append(f'threshold {wrapper.threshold!r} vs '
                   f'{calibration.threshold!r}')
    label = calibration.ood_label
    label = wrapper.num_classes if label is None else label
    if wrapper.ood_label != label:
        out.append(f'ood_label {wrapper.ood_label} vs {label}')
    return out


def export_module(module: ExportableOODSegmentor, out: str,
                  shape: Sequence[int], dynamic: bool = False,
                  opset: int = DEFAULT_OPSET,
                  exporter: str = 'torchscript', what: str = 'the model',
                  seed: int = 0) -> None:
    """Write ``module`` to ``out`` with ``torch.onnx``.

    Args:
        module: The module to export (attached while exporting).
        out: The ``.onnx`` file.
        shape: ``(H, W)`` of the example input traced.
        dynamic: Dynamic axes (batch, height and width with the TorchScript
            exporter; height and width with dynamo).
        opset: ONNX opset version.
        exporter: ``'torchscript'`` or ``'dynamo'`` (see the module
            docstring).
        what: The config, as error messages name it.
        seed: Seed of the random example input.

    The file is written atomically: a failed or interrupted export leaves
    a previous ``out`` as it was, and no partial file under its name.

    Raises:
        OODExportError: ``torch.onnx`` failed; the message names ``what``,
            the final decode head, the scorer and torch's first line.
        InvalidValueError: an unknown ``exporter``, a bad ``shape`` or
            ``opset``.
        OutputPathError: ``out`` is a folder, or in a folder that does not
            exist.
    """
    if exporter not in EXPORTERS:
        raise InvalidValueError(f'`exporter` must be one of {EXPORTERS}, got '
                                f'{exporter!r}')
    shape = _shape_pair(shape)
    opset = _check_opset(opset, exporter)
    with atomic_output(out, what='the ONNX file') as tmp:
        _export_to(module, tmp, shape, dynamic, opset, exporter, what, seed)


def _export_to(module: ExportableOODSegmentor, out: str,
               shape: Sequence[int], dynamic: bool, opset: int,
               exporter: str, what: str, seed: int) -> None:
    """``torch.onnx.export`` of ``module`` to ``out`` (see
    :func:`export_module`), written in place; arguments checked
    already."""
    generator = torch.Generator().manual_seed(seed)
    example = torch.rand(1, 3, *shape, generator=generator) * 255
    kwargs = dict(input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                  opset_version=opset)
    if exporter == 'torchscript':
        kwargs['dynamo'] = False
        if dynamic:
            axes = {0: 'batch', 1: 'height', 2: 'width'}
            kwargs['dynamic_axes'] = dict(
                {INPUT_NAME: {0: 'batch', 2: 'height', 3: 'width'}},
                **{name: axes for name in OUTPUT_NAMES})
    else:
        kwargs['dynamo'] = True
        if dynamic:
            from torch.export import Dim
            kwargs['dynamic_shapes'] = (
                {2: Dim('height'), 3: Dim('width')}, )
    with module, torch.no_grad(), warnings.catch_warnings():
        # The tracer warns about every Python value taken from a tensor;
        # the ones in mmseg's and the scorers' checks are constants of the
        # model (the dynamic-size checks verify the rest).
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        try:
            torch.onnx.export(module, (example, ), out, **kwargs)
        except OODExportError:
            raise
        except Exception as e:  # torch.onnx's errors have no common base
            first = next((ln for ln in str(e).splitlines() if ln.strip()),
                         '')
            raise OODExportError(
                f'{what}: torch.onnx ({exporter} exporter) could not '
                f'export the model with scorer {module.scorer_name!r} '
                f'(final decode head {module.head_name}, test mode '
                f'{module.mode!r}): {type(e).__name__}: {first}') from e


def export_onnx(config, checkpoint: str,
                calibration: Union[str, OODCalibration], out: str,
                shape: Optional[Sequence[int]] = None,
                dynamic: bool = False, check: bool = True,
                check_image: Optional[str] = None,
                opset: int = DEFAULT_OPSET, exporter: str = 'torchscript',
                cfg_options: Optional[dict] = None,
                unsafe_load: bool = False, seed: int = 0) -> dict:
    """Export ``config`` + ``checkpoint`` with a calibration's scorer and
    threshold to ONNX, and check it with onnxruntime.

    Args:
        config: Model config (file, ``mmseg_ood::<path>`` or ``Config``).
            A config whose model is an ``OODSegmentor`` is exported with
            its plain segmentor if its own decision (scorer, threshold,
            ``ood_label``) is ``calibration``'s, and refused otherwise.
        checkpoint: The checkpoint; must hold the weights ``calibration``
            was made for (their state-dict SHA-256 is compared; the file's
            for a schema-1 calibration).
        calibration: A calibration file (or directory holding
            ``calibration.json``) or an :class:`OODCalibration`.
        out: The ``.onnx`` file to write. Checked before any work: not
            the config, the checkpoint, the calibration file or the check
            image (by any name, links included), not a folder, and in a
            folder that exists. Written atomically and only once the
            check passed: a failed or interrupted export, or a failed
            check, leaves a previous ``out`` as it was.
        shape: ``(H, W)`` of the exported input (fixed) or, with
            ``dynamic``, of the example input traced and checked. Default:
            the test pipeline's ``Resize`` scale.
        dynamic: Dynamic batch, height and width axes (whole inference;
            height and width only with ``exporter='dynamo'``).
        check: Run onnxruntime on a check image and compare with PyTorch.
        check_image: Image file for the check (resized to ``shape``);
            default: a uniform random image (``seed``).
        opset: ONNX opset version.
        exporter: ``'torchscript'`` (default) or ``'dynamo'``.
        cfg_options: Config overrides (``--cfg-options``).
        unsafe_load: Load the checkpoint with full pickle (trusted files
            only).
        seed: Seed of the example input and the random check image.

    Returns:
        dict: ``out``, ``shape``, ``dynamic``, ``dynamic_axes`` (the input
        axes left dynamic, see :func:`dynamic_input_axes`), ``exporter``,
        ``scorer``,
        ``threshold``, ``ood_label``, ``opset``, ``seconds`` (export time)
        and, with ``check``, ``check`` (an :class:`OnnxCheck`).

    Raises:
        CalibrationMismatchError: the calibration was made for other
            weights, class names, model definition (config sections) or
            number of classes.
        OODExportError: what cannot be exported (see the module
            docstring), naming the config, the head and the scorer; an
            ``OODSegmentor`` config whose own calibration differs from
            ``calibration``.
        OnnxCheckError: (an ``OODExportError``) the graph does not give
            PyTorch's outputs; ``out`` is left as it was.
        OutputPathError: ``out`` cannot be written safely.
        MissingInputError / DamagedFileError: a missing or damaged
            checkpoint, calibration file or check image (before any work).
        InvalidValueError: a bad ``shape``, ``opset`` or ``exporter``.
        MissingExtraError: onnx / onnxruntime (or onnxscript for
            ``exporter='dynamo'``) not installed: the ``onnx`` extra.

    Example:
        >>> result = export_onnx(config, 'iter_300.pth', 'calibration.json',
        ...                      'model.onnx', shape=(512, 1024),
        ...                      dynamic=True)
        >>> print(result['check'].summary())
    """
    from ..models.inference import init_model
    # every input checked before any work, so that a good model.onnx is
    # never replaced by a run that was bound to fail
    if exporter not in EXPORTERS:
        raise InvalidValueError(f'--exporter must be one of {EXPORTERS}, got '
                                f'{exporter!r}')
    require_extra('onnx', 'ONNX export')
    if exporter == 'dynamo':
        require_extra('onnx', 'ONNX export with --exporter dynamo',
                      modules=('onnxscript', ))
    shape = _shape_pair(shape)
    opset = _check_opset(opset, exporter)
    if not isinstance(calibration, OODCalibration):
        calibration = OODCalibration.load(os.fspath(calibration))
    inputs = [_config_file(config), os.fspath(checkpoint),
              calibration.source, check_image]
    check_output_path(out, inputs, what='--out')
    image = None
    if check and check_image is not None:
        image = _load_image(check_image, None)
    ckpt = load_checkpoint_file(os.fspath(checkpoint), unsafe=unsafe_load)
    classes = (checkpoint_meta(ckpt).get('dataset_meta') or {}).get(
        'classes')
    calibration.check_matches(
        checkpoint=os.fspath(checkpoint),
        state_dict_sha256=state_dict_sha256(ckpt, os.fspath(checkpoint))
        if calibration.state_dict_sha256 is not None else None,
        classes=list(classes) if isinstance(classes, (list, tuple))
        else None, config_name=os.fspath(checkpoint))
    del ckpt
    model = init_model(config, checkpoint, device='cpu',
                       cfg_options=cfg_options, unsafe_load=unsafe_load)
    config_name = str(getattr(model.cfg, 'filename', None) or config)
    calibration.check_model_definition(model.cfg.model, config_name)
    if shape is None:
        shape = _default_shape(model.cfg)
        if shape is None:
            raise InvalidValueError(
                f'{config_name}: the test pipeline has no '
                'Resize scale to take the export size from; '
                'give `shape` (--shape H W)')
    inner = _ood_segmentor_in(model)
    if inner is not None:
        own = inner.calibration
        differences = _decision_differences(inner, calibration)
        if differences:
            raise OODExportError(
                f'{config_name} builds an OODSegmentor with its own '
                'decision (' + (f'calibration {own.source}' if own is not
                                None and own.source else
                                'scorer and threshold in the config')
                + ') that differs from the calibration given '
                f'({calibration.source or "OODCalibration"}): '
                + '; '.join(differences) + '. Export with the '
                "config's own calibration file, or with the plain model "
                'config (the segmentor nested under model.segmentor)')
        model = unwrap_segmentor(inner)
    scorer = calibration.build_scorer()
    try:
        module = ExportableOODSegmentor(
            model, scorer, calibration.threshold, calibration.ood_label,
            fixed_shape=None if dynamic else shape).eval()
    except OODExportError as e:
        raise OODExportError(f'{config_name}: {e}') from None
    calibration.check_num_classes(module.num_classes, config_name)
    if check:
        if image is not None:
            images = _load_image(check_image, shape)[None]
        else:
            rng = np.random.default_rng(seed)
            images = rng.integers(0, 256, (1, *shape, 3), dtype=np.uint8)
    result = dict(out=out, shape=list(shape), dynamic=bool(dynamic),
                  dynamic_axes=list(dynamic_input_axes(exporter, dynamic)),
                  exporter=exporter, scorer=calibration.scorer_name,
                  threshold=calibration.threshold,
                  ood_label=module.ood_label, opset=opset)
    with atomic_output(out, inputs, what='--out') as tmp:
        t0 = time.perf_counter()
        _export_to(module, tmp, shape, dynamic, opset, exporter,
                   config_name, seed)
        result['seconds'] = time.perf_counter() - t0
        if check:
            # against the PyTorch deployment: OODSegmentor.wrap(model,
            # calibration), the very decision the graph makes; checked
            # before the file replaces a previous one
            result['check'] = check_onnx(tmp, model, calibration, None,
                                         images)
            if not result['check'].passed:
                raise OnnxCheckError(
                    f'{config_name}: the exported graph does not give '
                    'the outputs of the PyTorch deployment ('
                    f'{result["check"].summary()}); {out} was not written '
                    '(--no-check writes it unchecked)', result['check'])
    return result


def _config_file(config) -> Optional[str]:
    """The file a config argument names (``None`` for a ``Config``
    object or a config that does not resolve: named later)."""
    if not isinstance(config, (str, os.PathLike)):
        return getattr(config, 'filename', None)
    try:
        return resolve_config_path(os.fspath(config))
    except UserError:
        return None
