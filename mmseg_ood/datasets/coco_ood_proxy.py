"""Build the COCO outlier proxy of the entropy-maximization paper.

Paper (sec. 5): COCO images "with instances that are not included in
Cityscapes (no persons, no cars, no traffic lights, ...)" and "a minimum
height and width of at least 480 pixels"; the instance pixels are the OOD
proxy (label 254), the rest is ignored (255).

Differences from the authors' preparation script (meta-ood,
``preparation/prepare_coco_segmentation.py``), on purpose:

- Pixels outside every instance are written as 255 (void), as the paper
  describes. The authors' script writes ``COCO.train_id_in`` (0) there,
  which their training code then treats as the first in-distribution class.
- The Cityscapes exclusion list adds ``train`` (a Cityscapes class that
  their list lacks); a VOC list is provided for VOC-trained models, and
  any list can be given.
- Images are selected from the annotation file (not by listing the image
  directory) and a missing image file is an error, not skipped.

Like the authors' script, crowd annotations of kept classes are labelled
254 too, and the size test uses the annotation's height and width.
"""
from __future__ import annotations

import json
import os
import os.path as osp
import shutil
from typing import Iterable, Optional

import cv2
import numpy as np

from ..errors import InvalidValueError, MissingInputError
from ..labels import IGNORE_INDEX, PROXY_OOD_INDEX
from ..utils.extras import require_extra

#: COCO categories that are Cityscapes classes (Cityscapes "traffic sign"
#: is COCO "stop sign").
CITYSCAPES_OVERLAP = ('person', 'bicycle', 'car', 'motorcycle', 'bus',
                      'train', 'truck', 'traffic light', 'stop sign')
#: COCO categories that are PASCAL VOC classes.
VOC_OVERLAP = ('person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus',
               'train', 'boat', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
               'bottle', 'chair', 'couch', 'potted plant', 'dining table',
               'tv')
ID_TAXONOMIES = {'cityscapes': CITYSCAPES_OVERLAP, 'voc': VOC_OVERLAP}


def prepare_coco_ood_proxy(coco_root: str,
                           out_dir: str,
                           split: str = 'train2017',
                           id_taxonomy: str = 'cityscapes',
                           exclude: Iterable[str] = (),
                           min_size: int = 480,
                           link: bool = False,
                           limit: Optional[int] = None) -> dict:
    """Write the proxy as ``out_dir/images/*.jpg`` and
    ``out_dir/annotations/*.png`` (254 instances, 255 elsewhere).

    Args:
        coco_root: COCO root with ``annotations/instances_<split>.json`` and
            ``<split>/<file_name>``.
        out_dir: Output root, read by ``OutlierProxyDataset``.
        split: COCO split, e.g. ``'train2017'``.
        id_taxonomy: ``'cityscapes'``, ``'voc'`` or ``'none'``: drop images
            with an instance of a COCO category of that ID taxonomy
            (:data:`CITYSCAPES_OVERLAP`, :data:`VOC_OVERLAP`).
        exclude: Further category names to drop; each must exist in the
            annotation file.
        min_size: Minimum image height and width.
        link: Symlink the images instead of copying them.
        limit: Stop after this many kept images (for a quick look).

    Returns:
        dict: the summary also written to ``out_dir/meta.json`` (counts,
        the excluded categories found in the file, taxonomy, split).

    Raises:
        MissingExtraError: pycocotools is not installed (the ``coco``
            extra).
    """
    require_extra('coco', 'converting COCO into outlier proxies')
    from pycocotools.coco import COCO
    ann_file = osp.join(coco_root, 'annotations', f'instances_{split}.json')
    img_dir = osp.join(coco_root, split)
    for path, what in ((ann_file, 'annotation file'), (img_dir,
                                                         'image directory')):
        if not osp.exists(path):
            raise MissingInputError(
                f'COCO {what} {path!r} not found. Expected layout:\n'
                f'{coco_root}/\n    annotations/instances_{split}.json\n'
                f'    {split}/<file_name>.jpg')
    if min_size < 1:
        raise InvalidValueError(f'`min_size` must be >= 1, got {min_size}')
    coco = COCO(ann_file)
    names = {c['name']: c['id'] for c in coco.loadCats(coco.getCatIds())}
    if id_taxonomy not in ID_TAXONOMIES and id_taxonomy != 'none':
        raise InvalidValueError(
            f'unknown `id_taxonomy` {id_taxonomy!r}; choose '
            f"from {sorted(ID_TAXONOMIES) + ['none']}")
    unknown = [n for n in exclude if n not in names]
    if unknown:
        raise InvalidValueError(
            f'unknown COCO categories in `exclude`: {unknown}; '
            f'choose from {sorted(names)}')
    # taxonomy names absent from this annotation file cannot occur in it
    exclude = list(dict.fromkeys(
        [n for n in ID_TAXONOMIES.get(id_taxonomy, ()) if n in names] +
        list(exclude)))
    dropped = set()
    for name in exclude:
        dropped.update(coco.getImgIds(catIds=[names[name]]))
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'annotations'), exist_ok=True)
    kept = small = 0
    for img_id in sorted(coco.getImgIds()):
        if img_id in dropped:
            continue
        info = coco.loadImgs(img_id)[0]
        h, w = info['height'], info['width']
        if h < min_size or w < min_size:
            small += 1
            continue
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None))
        mask = np.full((h, w), IGNORE_INDEX, np.uint8)
        for ann in anns:
            mask[coco.annToMask(ann) > 0] = PROXY_OOD_INDEX
        src = osp.join(img_dir, info['file_name'])
        if not osp.isfile(src):
            raise MissingInputError(f'COCO image {src!r} (id {img_id}) is '
                                    f'listed in {ann_file!r} but missing')
        stem = osp.splitext(info['file_name'])[0]
        dst = osp.join(out_dir, 'images', info['file_name'])
        if osp.lexists(dst):
            os.remove(dst)
        if link:
            os.symlink(osp.abspath(src), dst)
        else:
            shutil.copyfile(src, dst)
        if not cv2.imwrite(osp.join(out_dir, 'annotations', f'{stem}.png'),
                           mask):
            raise OSError(f'could not write the mask of {stem}')
        kept += 1
        if limit is not None and kept >= limit:
            break
    summary = dict(
        split=split,
        id_taxonomy=id_taxonomy,
        excluded_categories=exclude,
        min_size=min_size,
        dropped_for_category=len(dropped),
        dropped_for_size=small,
        images=kept,
        labels=dict(ood=PROXY_OOD_INDEX, void=IGNORE_INDEX))
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    return summary

