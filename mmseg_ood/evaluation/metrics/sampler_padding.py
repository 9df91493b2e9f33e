"""Leave out the samples that distributed sampling repeats.

With ``k`` ranks, mmengine's ``DefaultSampler`` (``round_up=True``, the
default of every mmseg config) pads the dataset's indices to a multiple of
``k`` by repeating the first ones, and deals them out round-robin: rank
``r`` gets global positions ``r, r + k, r + 2k, ...``. A position ``>=``
the dataset length is a repeat, and it can only be a rank's *last* sample.
mmengine's ``collect_results`` drops repeats by truncating the gathered
per-sample records to the dataset length. Accumulators have no records to
truncate, so :class:`PerSampleAccumulators` keeps each rank's last sample
apart until the dataset length is known (:meth:`~PerSampleAccumulators.
finish`), and then drops it if it is a repeat.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Hashable, Optional

from mmengine.dist import get_dist_info

__all__ = ['last_sample_is_padding', 'PerSampleAccumulators']


def last_sample_is_padding(num_local: int, size: int,
                           rank: Optional[int] = None,
                           world_size: Optional[int] = None) -> bool:
    """Whether this rank's last sample is a repeat added by round-up padding.

    Args:
        num_local: Samples this rank processed.
        size: The dataset length.
        rank / world_size: Default: mmengine's ``get_dist_info()``.

    A sampler that does not pad (``round_up=False``) never places a sample
    at a position ``>= size``: nothing is dropped.
    """
    if rank is None or world_size is None:
        rank, world_size = get_dist_info()
    if num_local == 0:
        return False
    return rank + (num_local - 1) * world_size >= size


class PerSampleAccumulators:
    """Named accumulators updated sample by sample, the last sample apart.

    Call :meth:`start_sample` before each sample and update the
    accumulators :meth:`get` returns. In a distributed run they are the
    current sample's own (fresh) accumulators, added to the rest when the
    next sample starts; :meth:`finish` adds the last one too, unless it is
    a padding repeat (:func:`last_sample_is_padding`). In one process
    :meth:`get` returns the totals directly: nothing is held back and
    nothing is copied.

    The accumulators need ``load_state_dict(other.state_dict())`` to add
    (the :class:`~mmseg_ood.evaluation.accumulators.base.Accumulator`
    protocol).
    """

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self._totals: 'OrderedDict[Hashable, object]' = OrderedDict()
        self._last: 'OrderedDict[Hashable, object]' = OrderedDict()
        self._hold: Optional[bool] = None
        self.num_samples = 0
        #: Whether :meth:`finish` left the last sample (number
        #: ``num_samples``) out as a padding repeat.
        self.last_dropped = False

    def start_sample(self) -> None:
        """The previous sample is not this rank's last: add it."""
        if self._hold is None:
            self._hold = get_dist_info()[1] > 1
        self._commit()
        self.num_samples += 1

    def get(self, key: Hashable, factory: Callable[[], object]):
        """The accumulator ``key`` to update with the current sample."""
        store = self._last if self._hold else self._totals
        if key not in store:
            store[key] = factory()
        return store[key]

    def _commit(self) -> None:
        for key, acc in self._last.items():
            if key in self._totals:
                self._totals[key].load_state_dict(acc.state_dict())
            else:
                self._totals[key] = acc
        self._last = OrderedDict()

    def finish(self, size: Optional[int]) -> 'OrderedDict[Hashable, object]':
        """The totals of this rank's samples, without a padding repeat.

        Args:
            size: The dataset length (mmengine's ``evaluate(size)``);
                ``None`` keeps every sample.

        Returns:
            OrderedDict: key -> accumulator (this object's; reset before
            reusing it).
        """
        self.last_dropped = bool(self._hold) and size is not None and \
            last_sample_is_padding(self.num_samples, size)
        if self.last_dropped:
            self._last = OrderedDict()
        self._commit()
        return self._totals
