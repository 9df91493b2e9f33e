"""A device named on a command line, checked before any work.

``torch.device('cuda:99')`` is accepted by torch, and only the first
tensor moved there fails, with an ``AssertionError`` or a ``RuntimeError``
deep inside a model build. :func:`check_device` turns the flag's text into
a ``torch.device`` that exists on this machine, or a one-line
:class:`~mmseg_ood.errors.InvalidValueError` naming the flag.
"""
from typing import Union

import torch

from mmseg_ood.errors import InvalidValueError

__all__ = ['check_device']

_EXAMPLES = "'cpu', 'cuda' or 'cuda:N'"


def _cuda_count() -> int:
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except (AssertionError, RuntimeError):  # a torch built without CUDA
        return 0


def check_device(text: Union[str, torch.device],
                 flag: str = '--device') -> torch.device:
    """The device ``text`` names, if this machine has it.

    Accepted: ``'cpu'``; ``'cuda'`` / ``'cuda:N'`` where CUDA is available
    and device ``N`` exists; ``'mps'`` where the MPS backend is available.

    Args:
        text: The flag's value (or a ``torch.device``).
        flag: How the message names the setting (``'--device'``).

    Returns:
        torch.device: The checked device.

    Raises:
        InvalidValueError: not a device string (``'gpu0'``), a device type
            other than the above, CUDA (or MPS) not available, or a CUDA
            index this machine does not have; the message names ``flag``,
            the value and what is available.
    """
    if isinstance(text, torch.device):
        device = text
    else:
        if not isinstance(text, str) or not text.strip():
            raise InvalidValueError(
                f'{flag} must be a device such as {_EXAMPLES}, got {text!r}')
        try:
            device = torch.device(text.strip())
        except (RuntimeError, ValueError, TypeError):
            raise InvalidValueError(
                f'{flag} {text!r} is not a device; use {_EXAMPLES}') from None
    if device.type == 'cpu':
        return device
    if device.type == 'cuda':
        count = _cuda_count()
        if count == 0:
            raise InvalidValueError(
                f'{flag} {text}: CUDA is not available on this machine '
                f'(torch {torch.__version__}'
                + (', built without CUDA' if torch.version.cuda is None
                   else '') + f'); use {flag} cpu')
        if device.index is not None and device.index >= count:
            raise InvalidValueError(
                f'{flag} {text}: this machine has {count} CUDA device'
                f'{"s" if count > 1 else ""} (cuda:0'
                + (f' to cuda:{count - 1}' if count > 1 else '') + ')')
        return device
    if device.type == 'mps':
        mps = getattr(torch.backends, 'mps', None)
        if mps is None or not mps.is_available():
            raise InvalidValueError(
                f'{flag} {text}: the MPS backend is not available on this '
                f'machine; use {flag} cpu')
        return device
    raise InvalidValueError(
        f'{flag} {text!r}: device type {device.type!r} is not supported; '
        f'use {_EXAMPLES}')
