"""ONNX export of a segmentor with its calibrated OOD scorer and threshold.

One graph does what ``mmseg_ood`` does in PyTorch for one calibration file
(:class:`~mmseg_ood.calibration_file.OODCalibration`)::

    img (N, 3, H, W) float32, raw BGR in [0, 255] (cv2.imread's channels)
      -> mmseg's data preprocessing (BGR -> RGB, (x - mean) / std, the
         test-time padding of ``data_preprocessor.test_cfg``)
      -> EncoderDecoder.inference (whole; or slide for one fixed size):
         backbone, neck, decode head; the scorer runs on the head's class
         scores (and embeddings) at the head's resolution, and its map is
         resized to the input together with the logits, exactly as
         :class:`~mmseg_ood.models.OODScoring` does in ``predict``
      -> pred     (N, H, W) int64: argmax class, OOD pixels set to
                  ``ood_label`` (``num_classes`` when the calibration says
                  ``null``)
         score    (N, H, W) float32: the calibrated scorer's map, higher =
                  more OOD
         ood_mask (N, H, W) uint8: 1 where ``score >= threshold``

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

from ..calibration_file import OODCalibration
from ..models import OODScoring
from ..models.embedding_capture import (describe_head, final_decode_head,
                                        unwrap_segmentor)

__all__ = ['OODExportError', 'ExportableOODSegmentor', 'OnnxCheck',
           'export_onnx', 'export_module', 'check_onnx',
           'reference_outputs', 'OUTPUT_NAMES', 'EXPORTERS']

#: The graph's outputs, in order.
OUTPUT_NAMES = ('pred', 'score', 'ood_mask')
#: The graph's input.
INPUT_NAME = 'img'
#: The exporters of ``torch.onnx`` offered (see the module docstring).
EXPORTERS = ('torchscript', 'dynamo')
#: The ONNX opset written (onnxruntime 1.31 runs up to opset 23).
DEFAULT_OPSET = 17
#: Tolerance of the check: |score_onnx - score_torch| and the band around
#: the threshold in which a mask pixel may legitimately flip.
SCORE_TOLERANCE = 1e-4


class OODExportError(ValueError):
    """A model, scorer or setting that cannot be exported to ONNX."""


def _shape_pair(shape, name='shape') -> Optional[Tuple[int, int]]:
    if shape is None:
        return None
    shape = tuple(shape)
    if len(shape) != 2 or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1
            for v in shape):
        raise ValueError(f'`{name}` must be two ints (H, W) >= 1, got '
                         f'{shape!r}')
    return shape


class ExportableOODSegmentor(nn.Module):
    """A segmentor, one scorer and its threshold as one traceable module.

    ``forward(img) -> (pred, score, ood_mask)`` (see the module docstring).
    The model's own code runs: its ``data_preprocessor`` settings
    (``bgr_to_rgb``, ``mean``, ``std``, test-time padding), then
    ``segmentor.inference`` with :class:`~mmseg_ood.models.OODScoring`
    attached and active, so that the score map is computed and resized by
    the very code of :func:`~mmseg_ood.apis.score_image`; then mmseg's
    post-processing (padding removal, argmax; ``sigmoid > threshold`` for a
    one-channel head).

    Args:
        segmentor: An mmseg ``EncoderDecoder`` (or subclass) in eval mode.
        scorer: The scorer (an instance, name or config dict).
        threshold: ``score >= threshold`` is OOD.
        ood_label: Label of OOD pixels in ``pred`` (``None``: the number of
            classes).
        fixed_shape: The one input size ``(H, W)`` the graph is exported
            for, or ``None`` for dynamic sizes (refused for slide
            inference).

    Raises:
        OODExportError: slide inference without ``fixed_shape``; a scorer
            the model cannot support; an unknown test mode.

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
        if isinstance(threshold, bool) or not isinstance(
                threshold, (int, float)) or not math.isfinite(threshold):
            raise ValueError('`threshold` must be a finite number, got '
                             f'{threshold!r}')
        self.threshold = float(threshold)
        self.head = final_decode_head(segmentor)
        self.head_name = describe_head(self.head)
        self.num_classes = int(segmentor.out_channels)
        if ood_label is None:
            ood_label = self.num_classes
        if isinstance(ood_label, bool) or not isinstance(ood_label, int) \
                or ood_label < 0:
            raise ValueError('`ood_label` must be None or an int >= 0, got '
                             f'{ood_label!r}')
        self.ood_label = ood_label
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
        c = self.num_classes
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
        mask = score >= self.threshold
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
def reference_outputs(model: nn.Module, scorer, threshold: float,
                      images: np.ndarray, ood_label: Optional[int] = None):
    """The PyTorch reference: mmseg's own ``test_step`` (data preprocessor,
    ``predict``, ``postprocess_result``) with
    :class:`~mmseg_ood.models.OODScoring`, one image at a time.

    Args:
        model: The segmentor.
        scorer: The scorer (instance, name or config dict).
        threshold: ``score >= threshold`` is OOD.
        images: ``(N, H, W, 3)`` BGR images (uint8 or float).
        ood_label: Label of OOD pixels (``None``: number of classes).

    Returns:
        tuple: ``pred`` ``(N, H, W)`` int64 (OOD pixels set to
        ``ood_label``), ``score`` ``(N, H, W)`` float32, ``ood_mask``
        ``(N, H, W)`` uint8, as numpy arrays.
    """
    from mmseg.structures import SegDataSample
    seg = unwrap_segmentor(model)
    if ood_label is None:
        ood_label = int(seg.out_channels)
    preds, scores = [], []
    with OODScoring(seg, {'score': scorer}) as scoring, torch.no_grad():
        del scoring
        for img in images:
            h, w = img.shape[:2]
            sample = SegDataSample(metainfo=dict(
                ori_shape=(h, w), img_shape=(h, w), pad_shape=(h, w)))
            inputs = torch.from_numpy(
                np.ascontiguousarray(img.transpose(2, 0, 1)))
            out = seg.test_step(dict(inputs=[inputs],
                                     data_samples=[sample]))[0]
            preds.append(out.pred_sem_seg.data[0].long().numpy())
            scores.append(out.ood_scores['score'].float().numpy())
    pred, score = np.stack(preds), np.stack(scores)
    mask = score >= threshold
    pred = np.where(mask, ood_label, pred)
    return pred, score, mask.astype(np.uint8)


# check ----------------------------------------------------------------------
@dataclass
class OnnxCheck:
    """onnxruntime's outputs against PyTorch's on the same images.

    Attributes:
        shape: ``(N, H, W)`` of the images checked.
        max_score_diff: ``max |score_onnx - score_torch|``.
        mask_mismatch: Mask pixels that differ although the reference
            score is farther than ``tolerance`` from the threshold (must
            be 0).
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
    onnx_seconds: float = 0.0
    torch_seconds: float = 0.0
    passed: bool = field(init=False)

    def __post_init__(self):
        self.passed = bool(self.max_score_diff <= self.tolerance
                           and self.mask_mismatch == 0
                           and self.pred_mismatch == 0)

    def summary(self) -> str:
        n, h, w = self.shape
        return (f'check on {n} image(s) {h}x{w}: max |score diff| '
                f'{self.max_score_diff:.3g} (tolerance {self.tolerance:g}), '
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


def check_onnx(onnx_path: str, model: nn.Module, scorer, threshold: float,
               images: np.ndarray, ood_label: Optional[int] = None,
               tolerance: float = SCORE_TOLERANCE) -> OnnxCheck:
    """Run ``onnx_path`` with onnxruntime (CPU) on ``images`` and compare
    with :func:`reference_outputs` of the PyTorch model.

    Args:
        onnx_path: The exported file.
        model: The segmentor it was exported from.
        scorer: The scorer (instance, name or config dict).
        threshold: The calibrated threshold.
        images: ``(N, H, W, 3)`` BGR images.
        ood_label: As in the export.
        tolerance: Score tolerance, and the band around the threshold in
            which mask flips are counted as near-threshold flips.

    Returns:
        OnnxCheck
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3:
        raise ValueError('`images` must be (N, H, W, 3) BGR, got shape '
                         f'{images.shape}')
    t0 = time.perf_counter()
    pred_t, score_t, mask_t = reference_outputs(model, scorer, threshold,
                                                images, ood_label)
    t1 = time.perf_counter()
    sess = _session(onnx_path)
    feed = {INPUT_NAME: np.ascontiguousarray(
        images.transpose(0, 3, 1, 2)).astype(np.float32)}
    pred_o, score_o, mask_o = sess.run(list(OUTPUT_NAMES), feed)
    t2 = time.perf_counter()
    if score_o.shape != score_t.shape:
        raise RuntimeError(f'{onnx_path}: score map of shape {score_o.shape}'
                           f', PyTorch gives {score_t.shape}')
    near = np.abs(score_t - threshold) <= tolerance
    flips = mask_o.astype(bool) != mask_t.astype(bool)
    pred_diff = pred_o != pred_t
    diff = np.abs(score_o.astype(np.float64) - score_t)
    return OnnxCheck(
        shape=tuple(int(v) for v in score_t.shape),
        max_score_diff=float(np.nanmax(diff)) if diff.size else 0.0,
        mask_mismatch=int((flips & ~near).sum()),
        near_threshold_flips=int((flips & near).sum()),
        near_threshold_pixels=int(near.sum()),
        pred_mismatch=int((pred_diff & ~(flips & near)).sum()),
        ood_fraction=float(mask_t.mean()), tolerance=float(tolerance),
        onnx_seconds=t2 - t1, torch_seconds=t1 - t0)


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
    import cv2
    if not osp.isfile(path):
        raise FileNotFoundError(f'check image {path} not found')
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{path} is not an image OpenCV can read')
    if shape is not None and img.shape[:2] != tuple(shape):
        img = cv2.resize(img, (shape[1], shape[0]),
                         interpolation=cv2.INTER_LINEAR)
    return img


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

    Raises:
        OODExportError: ``torch.onnx`` failed; the message names ``what``,
            the final decode head, the scorer and torch's first line.
    """
    if exporter not in EXPORTERS:
        raise ValueError(f'`exporter` must be one of {EXPORTERS}, got '
                         f'{exporter!r}')
    shape = _shape_pair(shape)
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
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
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
        checkpoint: The checkpoint; must be the one ``calibration`` was
            made for (its SHA-256 is compared).
        calibration: A calibration file (or directory holding
            ``calibration.json``) or an :class:`OODCalibration`.
        out: The ``.onnx`` file to write.
        shape: ``(H, W)`` of the exported input (fixed) or, with
            ``dynamic``, of the example input traced and checked. Default:
            the test pipeline's ``Resize`` scale.
        dynamic: Dynamic batch, height and width axes (whole inference).
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
        dict: ``out``, ``shape``, ``dynamic``, ``exporter``, ``scorer``,
        ``threshold``, ``ood_label``, ``opset``, ``seconds`` (export time)
        and, with ``check``, ``check`` (an :class:`OnnxCheck`).

    Raises:
        CalibrationMismatchError: the calibration was made for another
            checkpoint.
        OODExportError: what cannot be exported (see the module
            docstring), naming the config, the head and the scorer.

    Example:
        >>> result = export_onnx(config, 'iter_300.pth', 'calibration.json',
        ...                      'model.onnx', shape=(512, 1024),
        ...                      dynamic=True)
        >>> print(result['check'].summary())
    """
    from .score import init_model
    if not isinstance(calibration, OODCalibration):
        calibration = OODCalibration.load(str(calibration))
    calibration.check_matches(checkpoint=str(checkpoint))
    shape = _shape_pair(shape)
    model = init_model(config, checkpoint, device='cpu',
                       cfg_options=cfg_options, unsafe_load=unsafe_load)
    config_name = str(getattr(model.cfg, 'filename', None) or config)
    if shape is None:
        shape = _default_shape(model.cfg)
        if shape is None:
            raise ValueError(f'{config_name}: the test pipeline has no '
                             'Resize scale to take the export size from; '
                             'give `shape` (--shape H W)')
    scorer = calibration.build_scorer()
    try:
        module = ExportableOODSegmentor(
            model, scorer, calibration.threshold, calibration.ood_label,
            fixed_shape=None if dynamic else shape).eval()
    except OODExportError as e:
        raise OODExportError(f'{config_name}: {e}') from None
    t0 = time.perf_counter()
    export_module(module, out, shape, dynamic=dynamic, opset=opset,
                  exporter=exporter, what=config_name, seed=seed)
    result = dict(out=out, shape=list(shape), dynamic=bool(dynamic),
                  exporter=exporter, scorer=calibration.scorer_name,
                  threshold=calibration.threshold,
                  ood_label=module.ood_label, opset=opset,
                  seconds=time.perf_counter() - t0)
    if check:
        if check_image is not None:
            images = _load_image(check_image, shape)[None]
        else:
            rng = np.random.default_rng(seed)
            images = rng.integers(0, 256, (1, *shape, 3), dtype=np.uint8)
        result['check'] = check_onnx(out, model, scorer,
                                     calibration.threshold, images,
                                     calibration.ood_label)
    return result
