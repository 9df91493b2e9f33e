"""Runner hook: keep the first test sample's input and prediction."""
from __future__ import annotations

from typing import Optional

import cv2
import numpy as np
from mmengine.hooks import Hook

__all__ = ['PredictionCaptureHook']


class PredictionCaptureHook(Hook):
    """Keep the first sample of a test pass: the image the model was given
    (RGB uint8, after the test pipeline's resize, corruption included) and
    its predicted classes at that size.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB, or ``None`` before a test.
        prediction: ``(H, W)`` class indices, or ``None``.
    """
    priority = 'LOW'

    def __init__(self):
        self.image: Optional[np.ndarray] = None
        self.prediction: Optional[np.ndarray] = None

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        if self.image is not None or not outputs:
            return
        inputs = data_batch['inputs'][0]
        if isinstance(inputs, (list, tuple)):  # test-time augmentation
            inputs = inputs[0]
        img = inputs.detach().cpu().numpy().transpose(1, 2, 0)[..., ::-1]
        pred = outputs[0].pred_sem_seg.data[0].cpu().numpy()
        h, w = img.shape[:2]
        self.image = np.ascontiguousarray(img).astype(np.uint8)
        self.prediction = cv2.resize(pred.astype(np.uint8), (w, h),
                                     interpolation=cv2.INTER_NEAREST)
