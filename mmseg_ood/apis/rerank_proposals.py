"""The SegNet/UOI paper's measurement: mIoU after re-ranking segmentation
proposals with each network's soft output (eq. 17), next to the networks'
own argmax mIoU, the proposals' first (1-best) and the oracle mIoU."""
from __future__ import annotations

import os
import os.path as osp
import time
from typing import Dict, Optional, Union

import numpy as np
import torch

from ..errors import InvalidValueError, MissingInputError
from ..evaluation.functional.proposal_reranking import (
    ConfusionAccumulator, image_miou, reranking_scores,
    segment_flip_candidates)
from ..models.inference import init_model
from ..utils import load_config
from ..utils.files import dump_json, dump_text
from ..utils.run_record import run_record

__all__ = ['rerank_proposals', 'reranking_markdown']


def _softmax_and_label(model, batch):
    with torch.no_grad():
        out = model.test_step(batch)[0]
    prob = out.seg_logits.data.float().softmax(0).cpu().numpy()
    label = out.gt_sem_seg.data[0].cpu().numpy().astype(np.int64)
    return prob, label


def rerank_proposals(config: str,
                     checkpoints: Dict[str, str],
                     proposal_checkpoint: str,
                     proposal_config: Optional[str] = None,
                     num_candidates: int = 30,
                     grid: Union[int, tuple] = 13,
                     background_index: Optional[int] = 0,
                     background_penalty: float = 0.02,
                     eps: float = 1e-3,
                     max_images: Optional[int] = None,
                     cfg_options: Optional[dict] = None,
                     out_dir: Optional[str] = None,
                     device: str = 'cpu') -> dict:
    """Re-rank proposals of every val image with each network (eq. 17).

    For each image of ``config``'s validation set, the proposal model
    (``proposal_checkpoint``) gives the candidates
    (:func:`~mmseg_ood.evaluation.functional.proposal_reranking.
    segment_flip_candidates`: its argmax and up to ``num_candidates - 1``
    relabellings of its least certain segments), the same for every
    network. Each network picks the candidate of lowest eq. 17 score
    (:func:`~mmseg_ood.evaluation.functional.proposal_reranking.reranking_scores`)
    against its softmax at the image's resolution, pooled to ``grid``.

    Args:
        config: Config of the networks (they share the architecture) and
            of the validation set.
        checkpoints: ``{name: checkpoint}`` of the networks compared.
        proposal_checkpoint: The model whose output gives the candidates;
            it should not be one of the networks compared.
        proposal_config: Its config (default ``config``).
        num_candidates: Candidates per image (the paper: 5-30).
        grid: Grid of eq. 17's soft segmentations (the paper: 13).
        background_index: Class of the background penalty; ``None``: no
            penalty.
        background_penalty: Its factor (the paper: 0.02).
        eps: Smoothing of the distributions before the KLs.
        max_images: Only the first images of the set.
        cfg_options: Overrides of both configs.
        out_dir: Write ``reranking.json`` and ``reranking.md`` there.
        device: Device of the models.

    Returns:
        dict: ``networks`` (per name: ``argmax_miou``, ``reranked_miou``,
        ``reranked_iou`` per class, ``picked_first`` share of images where
        the pick is the proposal model's argmax), ``proposals``
        (``first_miou``, ``oracle_miou``, ``mean_candidates``) and
        ``settings``.

    References:
        "Combining the Best of Graphical Models and ConvNets for Semantic
        Segmentation", sec. 3.3-4, eq. 17, Table 2, Fig. 6.
    """
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS
    if not checkpoints:
        raise InvalidValueError(
            'no networks to compare (`checkpoints` is empty)')
    if num_candidates < 2:
        raise InvalidValueError(
            '`num_candidates` must be >= 2 to re-rank, got '
            f'{num_candidates}')
    if max_images is not None and max_images < 1:
        raise InvalidValueError(f'`max_images` must be >= 1, got {max_images}')
    for name, path in [('proposal', proposal_checkpoint),
                       *checkpoints.items()]:
        if not osp.isfile(path):
            raise MissingInputError(f'checkpoint of {name!r} not found: '
                                    f'{path}')
    cfg = load_config(config, cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    num_classes = len(dataset.metainfo['classes'])
    ignore_index = dataset.ignore_index
    proposer = init_model(proposal_config or config, proposal_checkpoint,
                          device, cfg_options)
    nets = {n: init_model(config, c, device, cfg_options)
            for n, c in checkpoints.items()}
    first = ConfusionAccumulator(num_classes, ignore_index)
    oracle = ConfusionAccumulator(num_classes, ignore_index)
    own = {n: ConfusionAccumulator(num_classes, ignore_index) for n in nets}
    picked = {n: ConfusionAccumulator(num_classes, ignore_index)
              for n in nets}
    picked_first = {n: 0 for n in nets}
    counts = []
    n_images = len(dataset) if max_images is None else min(
        len(dataset), max_images)
    t0 = time.time()
    for i in range(n_images):
        batch = pseudo_collate([dataset[i]])
        prob, label = _softmax_and_label(proposer, batch)
        cands = segment_flip_candidates(prob, num_candidates)
        counts.append(len(cands))
        first.update(cands[0], label)
        quality = [image_miou(c, label, num_classes, ignore_index)
                   for c in cands]
        oracle.update(cands[int(np.nanargmax(quality))], label)
        for name, net in nets.items():
            p, _ = _softmax_and_label(net, batch)
            own[name].update(p.argmax(0), label)
            s = reranking_scores(p, cands, grid, background_index,
                                 background_penalty, eps)
            pick = int(np.argmin(s))
            picked_first[name] += pick == 0
            picked[name].update(cands[pick], label)
    classes = list(dataset.metainfo['classes'])
    result = dict(
        networks={
            n: dict(checkpoint=checkpoints[n], argmax_miou=own[n].miou(),
                    reranked_miou=picked[n].miou(),
                    reranked_iou=dict(zip(classes,
                                          picked[n].iou().tolist())),
                    picked_first=picked_first[n] / n_images)
            for n in nets
        },
        proposals=dict(checkpoint=proposal_checkpoint,
                       first_miou=first.miou(), oracle_miou=oracle.miou(),
                       mean_candidates=float(np.mean(counts))),
        settings=dict(config=config, images=n_images,
                      num_candidates=num_candidates,
                      grid=list(grid) if not np.isscalar(grid) else grid,
                      background_index=background_index,
                      background_penalty=background_penalty, eps=eps,
                      generator='segment_flip_candidates',
                      seconds=round(time.time() - t0, 1)))
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        md = reranking_markdown(result)
        dump_json(dict(schema=1, run=run_record(), **result),
                  osp.join(out_dir, 'reranking.json'))
        dump_text(md, osp.join(out_dir, 'reranking.md'))
    return result


def reranking_markdown(result: dict) -> str:
    """The table: each network's argmax and re-ranked mIoU, then the
    proposals' first and oracle mIoU.

    Args:
        result: The dict :func:`rerank_proposals` returns (``networks``,
            ``proposals``, ``settings``).

    Returns:
        str: A Markdown table with a caption line and a closing line.
    """
    s, p = result['settings'], result['proposals']
    lines = [
        f'Re-ranking {p["mean_candidates"]:.1f} candidates per image '
        f'({s["images"]} images; eq. 17 on a {s["grid"]} grid, background '
        f'penalty {s["background_penalty"]} on class '
        f'{s["background_index"]})', '',
        '| network | argmax mIoU | re-ranked mIoU | picked the 1-best |',
        '|---|---|---|---|'
    ]
    for name, r in result['networks'].items():
        lines.append(f'| {name} | {r["argmax_miou"]:.2f} | '
                     f'{r["reranked_miou"]:.2f} | '
                     f'{100 * r["picked_first"]:.0f} % |')
    lines += ['', f'Proposals: 1-best {p["first_miou"]:.2f}, oracle '
              f'{p["oracle_miou"]:.2f} mIoU.']
    return '\n'.join(lines) + '\n'
