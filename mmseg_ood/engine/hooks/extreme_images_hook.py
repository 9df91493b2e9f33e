"""The heatmaps of the images a scorer handles best and worst."""
from __future__ import annotations

import heapq
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from mmengine.dist import all_gather_object, get_rank
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...errors import InvalidValueError
from ...evaluation.accumulators.pixel import PixelOODAccumulator
from ...evaluation.functional.inputs import to_numpy
from ...labels import IGNORE_INDEX
from ...utils.arguments import strict_arguments
from .ood_visualization_hook import prediction_palette, save_heatmap


def _stride(shape, max_side: int) -> int:
    return max(1, int(np.ceil(max(shape) / max_side)))


@HOOKS.register_module()
@strict_arguments
class ExtremeImagesHook(Hook):
    """Keeps the ``num`` test images with the highest and the ``num`` with
    the lowest per-image AP of one scorer and draws their heatmaps
    (:func:`~mmseg_ood.engine.hooks.ood_visualization_hook.save_heatmap`:
    every scorer's map, the OOD ground truth) after the test loop.

    An image counts where it has both ID and OOD pixels (per-image AP is
    undefined otherwise); an image among the highest is not drawn again
    among the lowest (with fewer than ``2 * num`` images). Memory is
    bounded: at most ``2 * num`` images
    are kept (per rank), each subsampled by an integer stride to at most
    ``max_side`` pixels on its long side; the AP that ranks them, the one
    in the file name, is the full-resolution one (the heatmap's panels
    show the subsampled maps). With several ranks
    each keeps its own extremes and rank 0 draws the extremes of all; an
    image seen twice (the padding repeats of distributed sampling) counts
    once.

    Files: ``<out_dir>/highest_<i>_AP<ap>_<stem>.png`` and
    ``<out_dir>/lowest_<i>_AP<ap>_<stem>.png`` (``i`` from 1, the most
    extreme first; ``ap`` in percent, two decimals).

    Args:
        out_dir: Folder of the heatmaps.
        scorer: The scorer whose AP ranks the images (default: the first
            of each sample's ``ood_scores``).
        num: Images kept at each end.
        max_side: Longest side of a kept image.
        label_key: Data-sample field of the OOD labels (0 ID, 1 OOD,
            255 void).
        palette: Class colours of the prediction (default: the model's
            ``dataset_meta``).
    """

    def __init__(self, out_dir: str, scorer: Optional[str] = None,
                 num: int = 3, max_side: int = 512,
                 label_key: str = 'gt_sem_seg', palette=None):
        for name, v in (('num', num), ('max_side', max_side)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise InvalidValueError(
                    f'`{name}` must be an int >= 1, got {v!r}')
        self.out_dir = out_dir
        self.scorer = scorer
        self.num = num
        self.max_side = max_side
        self.label_key = label_key
        self.palette = palette
        self._high: List[tuple] = []
        self._low: List[tuple] = []
        self._seen = 0

    def before_test(self, runner) -> None:
        self._high, self._low, self._seen = [], [], 0
        if self.palette is None:
            meta = getattr(runner.model, 'dataset_meta', None) or {}
            self.palette = meta.get('palette')

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        for sample in outputs or ():
            scores = sample.get('ood_scores') or {}
            if not scores or self.label_key not in sample:
                continue
            name = self.scorer or next(iter(scores))
            if name not in scores:
                raise InvalidValueError(
                    f'ExtremeImagesHook: scorer {name!r} is not in '
                    f'ood_scores (have {sorted(scores)})')
            labels = to_numpy(sample.get(self.label_key).data).squeeze(0)
            if not ((labels == 0).any() and (labels == 1).any()):
                continue
            score = to_numpy(scores[name])
            ap = PixelOODAccumulator(ignore_index=IGNORE_INDEX).update(
                score, labels).compute()['ap']
            if ap is None or not np.isfinite(ap):
                continue
            self._seen += 1
            s = _stride(labels.shape, self.max_side)
            entry = dict(
                img_path=sample.img_path, ap=float(ap), scorer=name,
                pred=to_numpy(sample.pred_sem_seg.data).squeeze(0)[::s, ::s],
                labels=labels[::s, ::s], stride=s,
                scores={n: to_numpy(v)[::s, ::s].astype(np.float32)
                        for n, v in scores.items()})
            key = (float(ap), -self._seen)  # ties: the first seen first
            self._push(self._high, key, entry)
            self._push(self._low, (-key[0], key[1]), entry)

    def _push(self, heap: list, key: tuple, entry: dict) -> None:
        if any(e['img_path'] == entry['img_path'] for _, _, e in heap):
            return  # a distributed sampler's padding repeat
        item = (key, id(entry), entry)
        if len(heap) < self.num:
            heapq.heappush(heap, item)
        elif key > heap[0][0]:
            heapq.heapreplace(heap, item)

    def after_test_epoch(self, runner, metrics=None) -> None:
        high = [e for _, _, e in self._high]
        low = [e for _, _, e in self._low]
        gathered = all_gather_object((high, low))
        if get_rank() != 0:
            return
        # the padding repeats of distributed sampling: each image once
        high = list({e['img_path']: e for h, _ in gathered
                     for e in h}.values())
        low = list({e['img_path']: e for _, lo in gathered
                    for e in lo}.values())
        high = sorted(high, key=lambda e: (-e['ap'], e['img_path']))
        high = high[:self.num]
        shown = {e['img_path'] for e in high}
        low = sorted((e for e in low if e['img_path'] not in shown),
                     key=lambda e: (e['ap'], e['img_path']))
        os.makedirs(self.out_dir, exist_ok=True)
        for which, entries in (('highest', high), ('lowest', low)):
            for i, e in enumerate(entries[:self.num], 1):
                self._draw(osp.join(
                    self.out_dir, f'{which}_{i}_AP{100 * e["ap"]:.2f}_'
                    f'{_stem(e["img_path"])}.png'), e)

    def _draw(self, path: str, e: dict) -> None:
        import mmcv
        image = mmcv.imread(e['img_path'], channel_order='rgb')
        s = e['stride']
        image = image[::s, ::s][:e['pred'].shape[0], :e['pred'].shape[1]]
        save_heatmap(path, image, e['pred'],
                     prediction_palette(self.palette, e['pred']),
                     e['scores'], e['labels'])


def _stem(path: str) -> str:
    return osp.splitext(osp.basename(str(path)))[0]
