"""Reject unknown constructor arguments with a message that helps.

Python already refuses an unexpected keyword, but its message names neither
the accepted arguments nor the likely intended one, and a class that takes
``**kwargs`` to pass on to its base swallows typos silently. Configs reach
constructors through registries, so a typo in a config (``bitz=8``) must
fail where it is built, naming the argument and what is accepted.
"""
from __future__ import annotations

import difflib
import functools
import inspect
from typing import Callable, Iterable, List, Mapping, Optional, Type

from mmseg_ood.errors import InvalidTypeError

__all__ = [
    'accepted_arguments', 'check_arguments', 'check_mapping_arguments',
    'strict_arguments'
]


def accepted_arguments(fn: Callable) -> Optional[List[str]]:
    """The keyword names ``fn`` accepts, or ``None`` if it takes
    ``**kwargs`` (anything goes).

    Args:
        fn: A function or constructor (``cls.__init__``); ``self`` and
            positional-only parameters are left out, ``object.__init__``
            accepts none.

    Returns:
        list or None: The names in signature order, or ``None``.
    """
    if fn is object.__init__:  # a class without a constructor of its own
        return []
    names = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and \
                p.name != 'self':
            names.append(p.name)
    return names


def check_arguments(owner: str, given: Iterable[str],
                    accepted: Iterable[str]) -> None:
    """Raise ``TypeError`` if ``given`` holds a name not in ``accepted``.

    Args:
        owner: What is being built, for the message (a class name).
        given: The keyword names received.
        accepted: The keyword names allowed.

    Raises:
        TypeError: naming each unknown argument, its closest accepted
            names, and every accepted name.
    """
    accepted = list(accepted)
    unknown = [k for k in given if k not in accepted]
    if not unknown:
        return
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k, accepted, n=2, cutoff=0.6)
        hint = f' (did you mean {" or ".join(map(repr, close))}?)' \
            if close else ''
        hints.append(repr(k) + hint)
    raise InvalidTypeError(
        f'{owner}: unknown argument{"s" * (len(unknown) > 1)} '
        f'{", ".join(hints)}; accepted: '
        f'{", ".join(accepted) or "none"}')


def strict_arguments(cls: Type) -> Type:
    """Class decorator: ``cls(...)`` checks its keyword arguments against
    the signature of ``cls.__init__`` before running it.

    Subclasses that define their own ``__init__`` need the decorator
    themselves.

    Example:
        >>> @METRICS.register_module()
        ... @strict_arguments
        ... class MyMetric(BaseMetric): ...
    """
    init = cls.__init__
    accepted = accepted_arguments(init)
    if accepted is None:
        raise InvalidTypeError(
            f'strict_arguments: {cls.__name__}.__init__ takes '
            '**kwargs, so every argument would be accepted')

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        check_arguments(cls.__name__, kwargs, accepted)
        init(self, *args, **kwargs)

    cls.__init__ = __init__
    return cls


def check_mapping_arguments(owner: str, cfg: Mapping,
                            fn: Callable) -> None:
    """:func:`check_arguments` of a config ``cfg`` (without ``type``)
    against the keywords of ``fn``; no check if ``fn`` takes ``**kwargs``.

    Args:
        owner: What is being built, for the message (a class or scorer
            name).
        cfg: The config dict whose keys are the keyword arguments; its
            ``type`` key is skipped.
        fn: The function or constructor the config is passed to.

    Raises:
        TypeError: naming each unknown key and the accepted ones.
    """
    accepted = accepted_arguments(fn)
    if accepted is not None:
        check_arguments(owner, [k for k in cfg if k != 'type'], accepted)
