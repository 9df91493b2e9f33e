"""OOD scoring on one config of every family of mmseg's shipped model zoo.

For each family folder of ``mmseg/.mim/configs`` (the configs inside the
installed mmseg wheel; ``_base_`` skipped), one config is built with random
weights on CPU (BN instead of SyncBN, no pretrained weights, no fixed input
size: padding to multiples of 32) and one random image is scored with
``mmseg_ood.apis.score_image(model, img, DEFAULT_SCORERS, strict=False)``.
Printed: a Markdown table family | config | head | head kind | scorers that
ran | scorers skipped | time, the reasons of the skipped scorers and of the
failures, and "N/M families score". A family *scores* when the logit
scorers (``msp``, ``entropy``, ``max_logit``, ``energy``) ran, every map
has the image's shape and is finite, and, where the embedding scorers ran,
the logits the head hands to ``predict_by_feat`` are its ``conv_seg``
applied to the captured embeddings (a second, plain inference checks
``s = W z + b``; ``--no-linear-check`` skips it).

Which config per family (``FAMILY_CONFIGS``): the smallest backbone variant
the family ships; among its configs the Cityscapes 512x1024 one if there is
one, else ADE20K 512x512 (else the family's only dataset); the plainest
decode head where the family pairs its backbone with several (FCN for
MobileNetV2, ResNeSt and K-Net, the naive head for SETR). A family folder
missing from the table (a newer mmseg) falls back to its first config in
sorted order that names Cityscapes, else its first config.

Excluded (``EXCLUDED``), each checked against its configs:

- ``dsdl``: not a model family; its two configs are DSDL dataset-format
  variants of ``_base_/models/deeplabv3_r50-d8.py`` (already covered by
  ``deeplabv3``).
- ``san``: ``MultimodalEncoderDecoder`` whose classifier is the class-name
  embedding of a CLIP text encoder (``CLIPTextEncoder``) and whose image
  encoder is CLIP's ViT (``pretrained='pretrain/clip_vit_base_patch16_
  224.pth'``). It builds with random weights (mmseg ships the BPE
  vocabulary), but then its classes are random text embeddings: it needs
  the CLIP weights, which are not reachable here.
- ``vpd``: a ``DepthEstimator`` (NYU depth, ``VPDDepthHead``), not a
  segmentor; its backbone is Stable Diffusion (needs the ``ldm`` package,
  the SD v1.5 checkpoint and ``class_embed_path`` downloaded from
  download.openmmlab.com).

Input: a random ``(H, W, 3)`` uint8 image, 128x256 by default (``--size``);
the test pipeline is replaced by load -> pack (the model-zoo pipelines
resize to 2048x1024 or 2048x512 first), so the model sees the image at its
own size, padded to multiples of 32 by the data preprocessor. Whole / slide
inference stays as configured (a slide window larger than the image is one
window). ``SIZE_OVERRIDES`` lists the families that need a larger image,
``FIXED_IMG_SIZE`` those whose backbone is built for the image's size.

Packages: MaskFormer / Mask2Former need mmdet, ConvNeXt / PoolFormer
mmpretrain (``NEEDS_PACKAGE``); mmpretrain 1.2.0's models import torchvision,
which has no CPU build for torch 2.13: importing ``mmseg_ood`` lets them
import without it (``mmseg_ood.utils.mmpretrain_without_torchvision``).

    python benchmarks/model_zoo_scoring.py [--families fcn knet]
        [--size 128 256] [--json out.json]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import os.path as osp
import sys
import time
import traceback
import warnings

import numpy as np

#: family -> the chosen config (file inside the family folder); rule above.
FAMILY_CONFIGS = {
    'ann': 'ann_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'apcnet': 'apcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'beit': 'beit-base_upernet_8xb2-160k_ade20k-640x640.py',
    'bisenetv1': 'bisenetv1_r18-d32_4xb4-160k_cityscapes-1024x1024.py',
    'bisenetv2': 'bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py',
    'ccnet': 'ccnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'cgnet': 'cgnet_fcn_4xb8-60k_cityscapes-512x1024.py',
    'convnext': 'convnext-tiny_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'danet': 'danet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'ddrnet': 'ddrnet_23-slim_in1k-pre_2xb6-120k_cityscapes-1024x1024.py',
    'deeplabv3': 'deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'deeplabv3plus': 'deeplabv3plus_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'dmnet': 'dmnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dnlnet': 'dnl_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'dpt': 'dpt_vit-b16_8xb2-160k_ade20k-512x512.py',
    'emanet': 'emanet_r50-d8_4xb2-80k_cityscapes-512x1024.py',
    'encnet': 'encnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'erfnet': 'erfnet_fcn_4xb4-160k_cityscapes-512x1024.py',
    'fastfcn': 'fastfcn_r50-d32_jpu_aspp_4xb2-80k_cityscapes-512x1024.py',
    'fastscnn': 'fast_scnn_8xb4-160k_cityscapes-512x1024.py',
    'fcn': 'fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'gcnet': 'gcnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'hrnet': 'fcn_hr18s_4xb2-40k_cityscapes-512x1024.py',
    'icnet': 'icnet_r18-d8_4xb2-80k_cityscapes-832x832.py',
    'isanet': 'isanet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'knet': 'knet-s3_r50-d8_fcn_8xb2-adamw-80k_ade20k-512x512.py',
    'mae': 'mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py',
    'mask2former': 'mask2former_r50_8xb2-90k_cityscapes-512x1024.py',
    'maskformer': 'maskformer_r50-d32_8xb2-160k_ade20k-512x512.py',
    'mobilenet_v2': 'mobilenet-v2-d8_fcn_4xb2-80k_cityscapes-512x1024.py',
    'mobilenet_v3': 'mobilenet-v3-d8-s_lraspp_4xb4-320k_cityscapes-'
                    '512x1024.py',
    'nonlocal_net': 'nonlocal_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'ocrnet': 'ocrnet_hr18s_4xb2-40k_cityscapes-512x1024.py',
    'pidnet': 'pidnet-s_2xb6-120k_1024x1024-cityscapes.py',
    'point_rend': 'pointrend_r50_4xb2-80k_cityscapes-512x1024.py',
    'poolformer': 'fpn_poolformer_s12_8xb4-40k_ade20k-512x512.py',
    'psanet': 'psanet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
    'pspnet': 'pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    'resnest': 'resnest_s101-d8_fcn_4xb2-80k_cityscapes-512x1024.py',
    'segformer': 'segformer_mit-b0_8xb1-160k_cityscapes-1024x1024.py',
    'segmenter': 'segmenter_vit-t_mask_8xb1-160k_ade20k-512x512.py',
    'segnext': 'segnext_mscan-t_1xb16-adamw-160k_ade20k-512x512.py',
    'sem_fpn': 'fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    'setr': 'setr_vit-l_naive_8xb2-160k_ade20k-512x512.py',
    'stdc': 'stdc1_4xb12-80k_cityscapes-512x1024.py',
    'swin': 'swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-'
            '512x512.py',
    'twins': 'twins_pcpvt-s_fpn_fpnhead_8xb4-80k_ade20k-512x512.py',
    'unet': 'unet-s5-d16_fcn_4xb4-160k_cityscapes-512x1024.py',
    'upernet': 'upernet_r18_4xb2-40k_cityscapes-512x1024.py',
    'vit': 'vit_deit-s16_upernet_8xb2-80k_ade20k-512x512.py',
}

#: family -> why it is not run (see the module docstring).
EXCLUDED = {
    'dsdl': 'not a model: DSDL dataset-format configs over '
            '_base_/models/deeplabv3_r50-d8.py (covered by deeplabv3)',
    'san': 'needs CLIP: MultimodalEncoderDecoder whose classes are '
           'CLIPTextEncoder embeddings of the class names and whose image '
           'encoder is CLIP ViT-B/16 (pretrain/clip_vit_base_patch16_224.pth)',
    'vpd': 'needs Stable Diffusion: a DepthEstimator (NYU depth, '
           'VPDDepthHead) over the ldm package, the SD v1.5 checkpoint and '
           'downloaded class embeddings',
}

#: family -> (H, W) where the default size does not fit the model.
SIZE_OVERRIDES = {
    # LRASPPHead's image pool is AvgPool2d(kernel_size=49, stride=(16, 20))
    # on the 1/8 feature map: every side must be >= 49 * 8 = 392 pixels
    # (smaller inputs fail with "Output size is too small").
    'mobilenet_v3': (512, 512),
}

#: Families whose backbone's position tables are built for ``img_size``
#: and not resized at run time: the backbone is built with ``img_size`` =
#: the image's size padded to multiples of 32 (its ``init_weights``
#: resizes a pretrained checkpoint's tables to that size, so this is the
#: model a user gets by fine-tuning or loading at that size). With the
#: shipped sizes (640x640 and 512x512, ``--size``) they run too, but the
#: UPerHead at 1/4 of 640x640 takes about 50 s on 2 CPU cores.
FIXED_IMG_SIZE = {
    # relative position bias tables of (2 * 640/16 - 1)^2 + 3 entries:
    # other token grids fail with "size of tensor a (129) must match the
    # size of tensor b (1601)"
    'beit': (640, 640),
    # absolute pos_embed of 1 + (512/16)^2 tokens added as is: "size of
    # tensor a (129) must match the size of tensor b (1025)"
    'mae': (512, 512),
}

#: family -> the OpenMMLab package its config needs besides mmseg:
#: MaskFormer / Mask2Former heads subclass mmdet's (without mmdet, mmseg
#: falls back to a placeholder base class and fails with "unexpected keyword
#: argument 'in_channels'"); ConvNeXt / PoolFormer backbones come from
#: mmpretrain (``custom_imports=dict(imports='mmpretrain.models')``).
NEEDS_PACKAGE = {
    'mask2former': 'mmdet',
    'maskformer': 'mmdet',
    'convnext': 'mmpretrain',
    'poolformer': 'mmpretrain',
}

#: The scorers whose absence makes a family count as failed.
LOGIT_SCORERS = ('msp', 'entropy', 'max_logit', 'energy')

#: The scorers that need a linear classifier's embeddings.
EMBEDDING_SCORERS = ('norm', 'n_max_logit', 'n_energy')


def configs_root() -> str:
    """``mmseg/.mim/configs`` of the installed mmseg wheel."""
    import mmseg
    return osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs')


def zoo_families() -> list:
    """The family folders of the shipped model zoo (``_base_`` skipped),
    sorted."""
    root = configs_root()
    return sorted(d for d in os.listdir(root)
                  if osp.isdir(osp.join(root, d)) and d != '_base_'
                  and not d.startswith(('.', '__')))


def included_families() -> list:
    """The families this benchmark runs (every family not excluded)."""
    return [f for f in zoo_families() if f not in EXCLUDED]


def family_config(family: str) -> str:
    """Path of the config chosen for ``family`` (the table, or the
    fallback rule of the module docstring)."""
    folder = osp.join(configs_root(), family)
    if family in FAMILY_CONFIGS:
        path = osp.join(folder, FAMILY_CONFIGS[family])
        if not osp.isfile(path):
            raise FileNotFoundError(f'{family}: chosen config {path} is not '
                                    'in this mmseg wheel')
        return path
    files = sorted(f for f in os.listdir(folder) if f.endswith('.py'))
    if not files:
        raise FileNotFoundError(f'{family}: no config in {folder}')
    city = [f for f in files if 'cityscapes' in f]
    return osp.join(folder, (city or files)[0])


def _is_checkpoint_init(init_cfg) -> bool:
    if isinstance(init_cfg, dict):
        return 'checkpoint' in init_cfg or init_cfg.get('type') in (
            'Pretrained', 'Pretrained_Part')
    if isinstance(init_cfg, (list, tuple)):
        return any(_is_checkpoint_init(c) for c in init_cfg)
    return False


def _drop_weights(cfg) -> None:
    """``pretrained=None`` and no ``init_cfg`` that loads a checkpoint,
    anywhere in a (nested) model config."""
    if isinstance(cfg, dict):
        for key in list(cfg.keys()):
            v = cfg[key]
            if key == 'pretrained' and isinstance(v, str):
                cfg[key] = None
            elif key == 'init_cfg' and _is_checkpoint_init(v):
                cfg[key] = None
            else:
                _drop_weights(v)
    elif isinstance(cfg, (list, tuple)):
        for v in cfg:
            _drop_weights(v)


def zoo_config(path: str, img_size=None):
    """The full Config of a model-zoo config, for small CPU inputs (as
    tests/conftest.py's ``zoo_model_config``, plus the test pipeline):
    BN, no pretrained weights anywhere, no fixed input size (padding to
    multiples of 32), and a test pipeline that feeds the image at its own
    size (load -> pack, no resize to 2048x1024). ``img_size`` sets the
    backbone's ``img_size`` (see ``FIXED_IMG_SIZE``)."""
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    model = cfg.model
    model.pretrained = None
    _drop_weights(model)
    model.data_preprocessor.pop('size', None)
    model.data_preprocessor['size_divisor'] = 32
    model.data_preprocessor['test_cfg'] = dict(size_divisor=32)
    from mmseg_ood.utils import sync_bn_to_bn
    sync_bn_to_bn(model)
    if img_size is not None:
        model.backbone.img_size = tuple(img_size)
    cfg.test_pipeline = [dict(type='LoadImageFromFile'),
                         dict(type='PackSegInputs')]
    return cfg


def _head_names(segmentor) -> str:
    import torch.nn as nn
    head = segmentor.decode_head
    if isinstance(head, nn.ModuleList):
        return ' > '.join(type(h).__name__ for h in head)
    return type(head).__name__


def random_image(size, seed: int = 0) -> np.ndarray:
    """A random ``(H, W, 3)`` uint8 BGR image."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=tuple(size) + (3, ), dtype=np.uint8)


def linear_classifier_gap(model, img):
    """How far the final head's logits are from its ``conv_seg`` applied to
    the captured input: ``max |s - (W z + b)| / max |s|`` over one plain
    inference (no scorers attached), where ``s`` is what the head hands to
    ``predict_by_feat`` and ``z`` the input of the last ``conv_seg`` call.
    Embedding scores assume ``s = W z + b`` at every pixel: a gap means the
    head changes its logits after ``conv_seg`` (or calls it on something
    else last). ``None`` for heads without ``conv_seg``; ``inf`` if
    ``predict_by_feat`` or ``conv_seg`` did not run, or the shapes differ.
    """
    import torch
    import torch.nn.functional as F
    from mmseg.apis import inference_model

    from mmseg_ood.models.introspection import (final_classifier,
                                                final_decode_head)
    head = final_decode_head(model)
    conv = final_classifier(head)
    if conv is None:
        return None
    seen = {}
    handle = conv.register_forward_hook(
        lambda m, args, out: seen.update(z=args[0]))
    original = head.predict_by_feat

    def predict_by_feat(seg_logits, *args, **kwargs):
        seen['s'] = seg_logits
        return original(seg_logits, *args, **kwargs)

    head.predict_by_feat = predict_by_feat
    try:
        with torch.no_grad():
            inference_model(model, img)
    finally:
        handle.remove()
        head.__dict__.pop('predict_by_feat', None)
    if 's' not in seen or 'z' not in seen:
        return float('inf')
    s, z = seen['s'], seen['z']
    if z.dim() != 4 or s.shape[2:] != z.shape[2:]:
        return float('inf')
    with torch.no_grad():
        again = F.conv2d(z, conv.weight, conv.bias)
    return float((s - again).abs().max() / s.abs().max().clamp_min(1e-12))


def run_family(family: str, size=(128, 256), seed: int = 0,
               check_linear: bool = True) -> dict:
    """Build ``family``'s config with random weights and score one random
    image with the default scorers; never raises.

    Args:
        family: A folder of the shipped model zoo.
        size: ``(H, W)`` of the image, unless ``SIZE_OVERRIDES`` has one.
        seed: Seed of the weights and of the image.
        check_linear: Also run :func:`linear_classifier_gap` (one more
            plain inference).

    Returns:
        dict: ``family``, ``config``, ``size``, ``head`` (decode head class,
        ``A > B`` for cascades), ``head_kind``, ``ran`` (scorer names),
        ``skipped`` (name -> warning text), ``build_s``, ``score_s``,
        ``linear_gap``, ``adapted`` (the size adaptation, if any), ``ok``
        (the family scores: the logit scorers ran,
        every map has the image's shape and is finite, and where embedding
        scorers ran the logits are ``conv_seg`` of the embeddings),
        ``problems`` (what the checks found) and ``error`` (``Type:
        message`` of an exception, else ``None``).
    """
    import torch

    import mmseg_ood  # noqa: F401
    from mmseg_ood.apis import DEFAULT_SCORERS, init_model, score_image
    from mmseg_ood.models.introspection import final_decode_head, head_kind
    size = tuple(SIZE_OVERRIDES.get(family, size))
    rec = dict(family=family, config=None, size=list(size), head=None,
               head_kind=None, ran=[], skipped={}, build_s=None,
               score_s=None, linear_gap=None, ok=False, problems=[],
               error=None, adapted=None)
    if family in SIZE_OVERRIDES:
        rec['adapted'] = f'image {size[0]}x{size[1]}'
    elif family in FIXED_IMG_SIZE and tuple(size) != FIXED_IMG_SIZE[family]:
        rec['adapted'] = 'backbone img_size={}x{}'.format(
            *(-(-v // 32) * 32 for v in size))
    model = None
    try:
        import importlib.util
        pkg = NEEDS_PACKAGE.get(family)
        if pkg is not None and importlib.util.find_spec(pkg) is None:
            raise ModuleNotFoundError(f'{family} needs {pkg}, which is not '
                                      'installed')
        path = family_config(family)
        rec['config'] = osp.relpath(path, configs_root())
        # the backbone sees the image padded to multiples of 32
        padded = tuple(-(-v // 32) * 32 for v in size)
        cfg = zoo_config(path, padded if family in FIXED_IMG_SIZE else None)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = init_model(cfg, None, device='cpu')
        rec['build_s'] = time.perf_counter() - t0
        rec['head'] = _head_names(model)
        rec['head_kind'] = head_kind(final_decode_head(model))
        img = random_image(size, seed)
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            with torch.no_grad():
                maps = score_image(model, img, list(DEFAULT_SCORERS),
                                   strict=False)
        rec['score_s'] = time.perf_counter() - t0
        for w in caught:
            msg = str(w.message)
            if msg.startswith('skipping scorer '):
                name = msg.split("'")[1]
                rec['skipped'][name] = msg.split(': ', 1)[-1]
        rec['ran'] = list(maps)
        missing = [s for s in LOGIT_SCORERS if s not in maps]
        if missing:
            rec['problems'].append(f'logit scorers missing: {missing}')
        for name, m in maps.items():
            if tuple(m.shape) != size:
                rec['problems'].append(
                    f'{name}: shape {tuple(m.shape)} != image {size}')
            elif not np.isfinite(m).all():
                rec['problems'].append(
                    f'{name}: {int((~np.isfinite(m)).sum())} non-finite '
                    'values')
        if check_linear:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                rec['linear_gap'] = linear_classifier_gap(model, img)
            if rec['linear_gap'] is not None and rec['linear_gap'] > 1e-4 \
                    and any(s in maps for s in EMBEDDING_SCORERS):
                rec['problems'].append(
                    f"logits != conv_seg(z) (gap {rec['linear_gap']:.2g}): "
                    'embedding scores do not describe these logits')
        rec['ok'] = not rec['problems']
    except Exception as e:  # report and go on with the next family
        rec['error'] = _describe(e)
        rec['traceback'] = traceback.format_exc()
    finally:
        del model
        gc.collect()
    return rec


def _describe(e: BaseException) -> str:
    """``Type: first line`` of an exception, and of its root cause (e.g.
    the ModuleNotFoundError behind mmengine's "Failed to import custom
    modules")."""
    def line(x):
        text = str(x).strip()
        return f"{type(x).__name__}: {text.splitlines()[0] if text else ''}"

    root = e
    while (root.__cause__ or root.__context__) is not None:
        root = root.__cause__ or root.__context__
    out = line(e)[:300]
    return out if root is e else f'{out} (cause: {line(root)[:200]})'


def _short(names) -> str:
    return ', '.join(names) if names else '-'


def _seconds(v) -> str:
    return '-' if v is None else f'{v:.2f}'


def _skip_lines(records, list_up_to: int = 8) -> list:
    """Why scorers were skipped: the scorers skipped on the same families
    form one group; a group of at most ``list_up_to`` families gets one
    line per family with its warning (they name the head), a larger one a
    single line with the first family's warning as an example."""
    groups = {}
    for name in sorted({n for r in records for n in r['skipped']}):
        who = tuple(r['family'] for r in records if name in r['skipped'])
        groups.setdefault(who, []).append(name)
    if not groups:
        return []
    by = {r['family']: r for r in records}
    lines = ['', 'Skipped scorers:', '']
    for who, names in sorted(groups.items(), key=lambda g: -len(g[0])):
        label = ', '.join(names)
        if len(who) > list_up_to:
            rest = [r['family'] for r in records if r['family'] not in who]
            where = (f'all {len(who)} families' if not rest else
                     f"{len(who)}/{len(records)} (all but {', '.join(rest)})")
            lines.append(f'- {label}: skipped on {where}, e.g. '
                         f"\"{by[who[0]]['skipped'][names[0]]}\"")
        else:
            for fam in who:
                lines.append(f'- {label} on {fam}: '
                             f"\"{by[fam]['skipped'][names[0]]}\"")
    return lines


def markdown_table(records) -> str:
    """The results as a Markdown table, then why scorers were skipped and
    why families failed."""
    lines = [
        '| family | config | head | head kind | scorers that ran | skipped '
        '| build (s) | score (s) | scores |',
        '|---|---|---|---|---|---|---|---|---|'
    ]
    for r in records:
        status = 'yes' if r['ok'] else (
            'FAILED' if r['error'] else 'NO: ' + '; '.join(r['problems']))
        cfg = osp.basename(r['config']) if r['config'] else '-'
        if r.get('adapted'):
            cfg += f" ({r['adapted']})"
        lines.append(
            f"| {r['family']} | {cfg} | {r['head'] or '-'} | "
            f"{r['head_kind'] or '-'} | {_short(r['ran'])} | "
            f"{_short(sorted(r['skipped']))} | {_seconds(r['build_s'])} | "
            f"{_seconds(r['score_s'])} | {status} |")
    lines += _skip_lines(records)
    failed = [r for r in records if r['error']]
    if failed:
        lines += ['', 'Failures:', '']
        for r in failed:
            lines.append(f"- {r['family']}: {r['error']}")
    return '\n'.join(lines)


def summary(records) -> str:
    n = sum(r['ok'] for r in records)
    emb = sum(all(s in r['ran'] for s in EMBEDDING_SCORERS)
              for r in records)
    return (f'{n}/{len(records)} families score '
            f'({emb} with the embedding scorers)')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--families', nargs='+', help='only these families')
    p.add_argument('--size', type=int, nargs=2, default=[128, 256],
                   metavar=('H', 'W'))
    p.add_argument('--json', help='also save the records here')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--no-linear-check', action='store_true',
                   help='skip the second inference that checks s = W z + b')
    args = p.parse_args(argv)
    import torch
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    families = included_families()
    if args.families:
        unknown = sorted(set(args.families) - set(zoo_families()))
        if unknown:
            p.error(f'unknown families {unknown}; choose from '
                    f'{zoo_families()}')
        families = [f for f in zoo_families() if f in args.families]
    records = []
    t_all = time.perf_counter()
    for fam in families:
        if fam in EXCLUDED:
            print(f'{fam}: excluded ({EXCLUDED[fam]})', file=sys.stderr)
            continue
        rec = run_family(fam, tuple(args.size), args.seed,
                         check_linear=not args.no_linear_check)
        records.append(rec)
        state = 'ok' if rec['ok'] else rec['error'] or rec['problems']
        print(f"{fam}: {state} ({rec['score_s'] or 0:.1f} s)",
              file=sys.stderr, flush=True)
    total = time.perf_counter() - t_all
    print(markdown_table(records))
    print()
    print('Excluded: ' + '; '.join(f'{k} ({v})' for k, v in EXCLUDED.items()))
    print(summary(records) + f'; total {total:.0f} s')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(records=records, excluded=EXCLUDED,
                           total_s=total), f, indent=1)
    return 0 if all(r['ok'] for r in records) else 1


if __name__ == '__main__':
    sys.exit(main())
