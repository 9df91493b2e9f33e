"""ODIN: temperature-scaled max softmax of a perturbed input."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import (OOD_SCORERS, BaseScorer, ScoreInputs, check_num_classes,
                   check_number, softmax_stable)


@OOD_SCORERS.register_module('odin')
class ODIN(BaseScorer):
    """ODIN: ``S(x) = 1 - max_c softmax(s(x~) / T)_c`` with
    ``x~ = x - eps sign(-grad_x log S_yhat(x; T))``.

    Liang, Li & Srikant (2018), eq. (1)-(2): temperature scaling ``S_c(x;
    T) = softmax(s(x) / T)_c`` and an input perturbation that raises the
    softmax score of the predicted class ``yhat``; the score is the max
    temperature-scaled softmax of the perturbed input, subtracted from 1
    here as ``msp``'s. Higher = more OOD. ``T = 1000``, ``eps = 0.0014``
    are the paper's CIFAR settings.

    Per pixel: the gradient is that of ``sum_p log S_yhat(p)(x; T)`` over
    every pixel ``p`` of the model's output (each pixel's predicted class),
    one backward pass per image batch; ``eps`` is in the units of the image
    in ``[0, 1]`` (as the paper), so in the model's normalized input the
    step of channel ``k`` is ``eps * 255 / std_k`` (the data
    preprocessor's ``std``). The caller that holds the model
    (:class:`~mmseg_ood.models.OODScoring`, hence ``ood_test``,
    ``score_image`` and ``OODScoringHook``) runs the gradient pass and the
    perturbed forward pass; this class scores the perturbed pass's logits.
    With ``epsilon=0`` and ``temperature=1`` it is ``msp``.

    Args:
        temperature: ``T > 0``.
        epsilon: ``eps >= 0``.

    Shape:
        ``(N, C, H, W) -> (N, H, W)``; ``(N, C) -> (N,)`` (the gradient
        pass needs the model, whose output is ``(N, C, H, W)``).

    References:
        Liang, Li & Srikant, "Enhancing The Reliability of
        Out-of-distribution Image Detection in Neural Networks", ICLR 2018,
        eq. (1)-(2).
    """
    name = 'odin'
    requires_perturbation = True

    def __init__(self, temperature: float = 1000.0, epsilon: float = 0.0014):
        self.temperature = check_number('temperature', temperature, 0.0,
                                        low_open=True)
        self.epsilon = check_number('epsilon', epsilon, 0.0)

    def perturbation_loss(self, logits: Tensor) -> Tensor:
        """``-sum_p log S_yhat(p)(x; T)``, whose gradient sign steps the
        input: ``x~ = x - eps sign(grad)``.

        Args:
            logits: The model's class scores ``(N, C, H, W)`` with a graph
                to the input.
        """
        log_p = torch.log_softmax(logits.float() / self.temperature, dim=1)
        return -log_p.max(dim=1).values.sum()

    def score(self, inputs: ScoreInputs) -> Tensor:
        check_num_classes('odin', inputs.logits)
        probs = softmax_stable(inputs.logits.float() / self.temperature)
        return 1 - probs.max(dim=1).values

    def __repr__(self) -> str:
        return f'ODIN(temperature={self.temperature}, epsilon={self.epsilon})'
