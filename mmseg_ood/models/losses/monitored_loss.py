"""A wrapper that logs what a loss does to training, iteration by iteration.

A loss that breaks training rarely shows it in its own value: the value
can stay moderate while a few pixels' gradients dwarf everything else, or
one term of a mix outweighs the others by an order of magnitude. What
shows it is the gradient each term sends back, and the loss's own internal
quantities (for :class:`~mmseg_ood.models.losses.UOILoss`, the per-class
ratio ``E[U_k] / E[I_k]``). This wrapper logs both through mmengine's
``MessageHub``, so they reach ``scalars.json`` (and TensorBoard, ...) next to
the loss, and ``tools/training_curves.py`` plots them.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
from mmengine.logging import MessageHub
from mmseg.registry import MODELS
from torch import Tensor

from ...errors import InvalidTypeError
from ...utils.arguments import strict_arguments

__all__ = ['MonitoredLoss']


@MODELS.register_module()
@strict_arguments
class MonitoredLoss(nn.Module):
    """Any mmseg loss, unchanged, with its effect on training logged.

    The value and gradient are exactly those of the wrapped loss ``L``
    (with its ``loss_weight``); the key in the loss dict is its
    ``loss_name``. While training (the module in train mode, gradients
    enabled, logits requiring grad), each call also logs to the current
    mmengine ``MessageHub``:

    - ``train/<loss_name>.logit_grad_norm``: ``||dL/ds||_2``, the norm of
      the gradient this term sends to the logits ``s`` it receives (in an
      mmseg decode head, the logits resized to the label size), computed
      with ``torch.autograd.grad`` on the loss's own graph (the backbone is
      not traversed; cost: one extra backward through the loss alone);
    - ``train/<loss_name>.<key>`` for each entry of the wrapped loss's
      ``diagnostics(pred, target, **kwargs)`` if it has one
      (:meth:`UOILoss.diagnostics`).

    The keys carry the loss name only, not the head: to monitor the same
    loss in two heads (decode and auxiliary), give them distinct
    ``loss_name`` s.

    mmengine's optimizer wrapper logs the total parameter-gradient norm as
    ``grad_norm`` when ``optim_wrapper.clip_grad`` is set. mmengine's
    ``LogProcessor`` averages keys with ``loss`` or ``grad_norm`` in their
    name over ``log_processor.window_size`` iterations: per-iteration
    values need ``window_size=1`` and ``default_hooks.logger.interval=1``.

    Args:
        loss: Config of the wrapped loss (anything mmseg's ``MODELS`` builds,
            with a ``loss_name``).
        log_gradient: Log ``logit_grad_norm`` (the extra backward).

    Example:
        >>> loss_decode = [
        ...     dict(type='MonitoredLoss',
        ...          loss=dict(type='UOILoss', loss_weight=0.7)),
        ...     dict(type='MonitoredLoss',
        ...          loss=dict(type='CrossEntropyLoss', loss_weight=0.3))]

    References:
        "Combining the Best of Graphical Models and ConvNets for Semantic
        Segmentation", supplement eq. 67 (the UOI gradient this measures).
    """

    def __init__(self, loss: dict, log_gradient: bool = True):
        super().__init__()
        if not isinstance(loss, dict) or 'type' not in loss:
            raise InvalidTypeError('`loss` must be a loss config dict with a '
                                   f'`type`, got {loss!r}')
        self.loss = MODELS.build(loss)
        if not isinstance(getattr(self.loss, 'loss_name', None), str):
            raise InvalidTypeError(
                f'`loss` {loss["type"]!r} has no `loss_name`: '
                'mmseg could not put it in the loss dict')
        self.log_gradient = bool(log_gradient)

    @property
    def loss_name(self) -> str:
        return self.loss.loss_name

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        out = self.loss(pred, target, **kwargs)
        if self.training and torch.is_grad_enabled() and \
                pred.requires_grad and out.requires_grad:
            self._log(self.scalars(out, pred, target, **kwargs))
        return out

    def scalars(self, out: Tensor, pred: Tensor, target: Tensor,
                **kwargs) -> dict:
        """What :meth:`forward` logs, without the ``train/<loss_name>.``
        prefix: ``{'logit_grad_norm': ..., **diagnostics}``."""
        values = {}
        if self.log_gradient:
            grad, = torch.autograd.grad(out, pred, retain_graph=True)
            values['logit_grad_norm'] = float(grad.double().norm())
        diagnostics = getattr(self.loss, 'diagnostics', None)
        if diagnostics is not None:
            with torch.no_grad():
                values.update(diagnostics(pred.detach(), target, **kwargs))
        return values

    def _log(self, values: dict, hub: Optional[MessageHub] = None) -> None:
        hub = hub or MessageHub.get_current_instance()
        for key, value in values.items():
            hub.update_scalar(f'train/{self.loss_name}.{key}', float(value))
