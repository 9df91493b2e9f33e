"""The merge protocol every streaming accumulator follows.

An accumulator keeps sufficient statistics of the samples it has seen (a
histogram, component counts, confusion areas) instead of the samples. Two
accumulators of the same kind merge by adding their states, so evaluating
in k batches, on k workers or on k ranks gives what one pass over all the
data gives. The protocol:

- ``update(...)``: add samples (the signature is the accumulator's own);
- ``state_dict() -> dict``: the statistics as plain numbers and numpy
  arrays (small enough to gather across ranks, picklable by
  ``all_gather_object``);
- ``load_state_dict(state)``: **add** a state into this accumulator
  (merging, not replacing: an empty accumulator that loads a state becomes
  a copy of it);
- ``empty_like()``: a new, empty accumulator with the same parameters;
- ``merge(other)``: ``load_state_dict(other.state_dict())``;
- ``compute() -> dict``: the metrics.

:func:`merge_across_ranks` is the one place where states cross ranks.
"""
from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Callable, Mapping, Optional, TypeVar

from mmengine.dist import all_gather_object

__all__ = ['Accumulator', 'merge_across_ranks']

A = TypeVar('A', bound='Accumulator')


class Accumulator:
    """Base of the streaming accumulators (see the module docstring).

    Subclasses implement ``update``, :meth:`state_dict`,
    :meth:`load_state_dict`, :meth:`reset` and :meth:`compute`.
    """

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self: A, state: dict) -> A:
        """Add ``state`` (another accumulator's :meth:`state_dict`)."""
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def compute(self) -> dict:
        raise NotImplementedError

    def empty_like(self: A) -> A:
        """A new, empty accumulator with the same parameters."""
        new = copy.copy(self)  # parameters are immutable values
        new.reset()
        return new

    def merge(self: A, other: A) -> A:
        """Add ``other``'s statistics into this accumulator."""
        return self.load_state_dict(other.state_dict())


def merge_across_ranks(
        local: Mapping[str, Accumulator],
        factory: Optional[Callable[[str], Accumulator]] = None
) -> 'OrderedDict[str, Accumulator]':
    """Every rank's accumulators, merged by name; the same on every rank.

    Gathers the :meth:`~Accumulator.state_dict` of each local accumulator
    from all ranks (one ``all_gather_object``; without distributed
    evaluation, just this process's) and adds them, in rank order, into
    fresh accumulators. Names keep their first-seen order (rank 0's first).

    Args:
        local: This rank's accumulators by name.
        factory: Makes an empty accumulator for a name that this rank has
            not seen (another rank has); default: ``empty_like`` of the
            local one, an error if there is none.

    Returns:
        OrderedDict: name -> merged accumulator (new objects; ``local`` is
        unchanged).
    """
    gathered = all_gather_object(
        OrderedDict((n, a.state_dict()) for n, a in local.items()))
    merged: 'OrderedDict[str, Accumulator]' = OrderedDict()
    for part in gathered:
        for name, state in part.items():
            if name not in merged:
                if name in local:
                    merged[name] = local[name].empty_like()
                elif factory is not None:
                    merged[name] = factory(name)
                else:
                    raise KeyError(f'accumulator {name!r} exists on another '
                                   'rank only, and no factory was given')
            merged[name].load_state_dict(state)
    return merged

