"""Test-time augmentation that merges OOD score maps too."""
from __future__ import annotations

from typing import List

import torch
from mmengine.structures import PixelData

from mmseg.models import SegTTAModel
from mmseg.registry import MODELS
from mmseg.utils import SampleList
from ...utils.arguments import strict_arguments


@MODELS.register_module()
@strict_arguments
class OODSegTTAModel(SegTTAModel):
    """mmseg's ``SegTTAModel`` that also merges logits and OOD scores.

    mmseg averages the softmax of the augmented predictions for
    ``pred_sem_seg`` but keeps the ``seg_logits`` of the last augmentation
    and drops every other field. Here, after the same prediction merge,
    ``seg_logits`` is the mean of the augmented logits and each
    ``ood_scores[name]`` is the mean of that score's maps. Every augmented
    map has already been un-flipped and resized to ``ori_shape`` by the
    segmentor, so the means are pixel-aligned. Drop-in for ``SegTTAModel``:
    ``tta_model = dict(type='OODSegTTAModel')``.

    Args:
        module: The segmentor (a config dict or the model); mmseg's tools
            set it to the config's ``model``.
        data_preprocessor: Replaces the segmentor's data preprocessor if
            given (as mmengine's ``BaseTTAModel``).
    """

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        merged = super().merge_preds(data_samples_list)
        for out, samples in zip(merged, data_samples_list):
            logits = torch.stack([s.seg_logits.data for s in samples])
            out.set_data({'seg_logits': PixelData(data=logits.mean(0))})
            if 'ood_scores' in samples[0]:
                names = samples[0].ood_scores.keys()
                out.set_field(
                    {
                        n: torch.stack([s.ood_scores[n]
                                        for s in samples]).mean(0)
                        for n in names
                    }, 'ood_scores')
        return merged
