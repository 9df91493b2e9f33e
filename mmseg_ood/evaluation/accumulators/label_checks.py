"""Raw label values that a dataset's ``value_map`` does not list.

An OOD dataset maps the raw values of its label files into 0 (ID), 1 (OOD)
and 255 (void) through its ``value_map``, which lists every value the files
legitimately contain, voids included. A raw value it does not list is
evaluated as void, and ``LoadOODAnnotations`` records it per sample
(``ood_unlisted = {raw value: pixel count}``). :class:`UnlistedLabelValues`
adds these records up over a dataset; :func:`unlisted_values_message`
turns the summary into one warning per dataset.

Why a warning and a count, not an error: stray values in label files are
common and mostly harmless (a mask resized with interpolation has a thin
seam of in-between values along every border; an annotation tool leaves a
few pixels of an unused class), and an error would block a whole
evaluation for them. But an unlisted value can also be a real class the
``value_map`` misses: anomalies labelled 2 in a folder whose ``value_map``
expects 255 lose every OOD pixel. So the count goes into the results
(``voided_pixels``, the values and example files), and the warning names
the files, the values and how to list them; a user who wants the old
behaviour lists the values as void (``{7: 255}``), which silences it.
"""
from __future__ import annotations

import warnings
from typing import Mapping, Optional

from ...errors import InvalidTypeError, InvalidValueError, OODNotice
from .base import Accumulator

__all__ = ['UnlistedLabelValues', 'UnlistedLabelValueWarning',
           'unlisted_values_message', 'warn_unlisted_values']


class UnlistedLabelValueWarning(OODNotice):
    """Label files hold raw values that the dataset's ``value_map`` does not
    list; their pixels were evaluated as void. A package notice
    (:class:`~mmseg_ood.errors.OODNotice`): a log line in a tool run."""


def _check_counts(unlisted, name: str) -> dict:
    if not isinstance(unlisted, Mapping):
        raise InvalidTypeError(
            f'`{name}` must be a mapping raw value -> pixel '
            f'count, got {type(unlisted).__name__}')
    out = {}
    for v, n in unlisted.items():
        try:
            value, count = int(v), int(n)
        except (TypeError, ValueError):
            value = count = -1
        if not 0 <= value <= 255 or count < 0 or value != v or count != n:
            raise InvalidValueError(
                f'`{name}` must map raw values in [0, 255] to '
                f'pixel counts >= 0, got {v!r}: {n!r}')
        if count:
            out[value] = count
    return dict(sorted(out.items()))


class UnlistedLabelValues(Accumulator):
    """Pixels of raw label values that the ``value_map`` does not list.

    Keeps, over all files seen: the pixel count of each unlisted raw value,
    the number of files that hold any, and as examples the
    ``max_examples`` such files with the smallest paths (so the examples
    do not depend on the order of the files, the batches or the ranks:
    merging equals one pass). Memory: at most 256 counts and
    ``max_examples`` small dicts; the counts are exact.

    Args:
        max_examples: Files kept as examples, >= 0.

    Example:
        >>> acc = UnlistedLabelValues()
        >>> acc.update('a_labels_semantic.png', {7: 120})
        >>> acc.update('b_labels_semantic.png', {})
        >>> acc.compute()['values']
        {'7': 120}
    """

    def __init__(self, max_examples: int = 5):
        if isinstance(max_examples, bool) or not isinstance(
                max_examples, int) or max_examples < 0:
            raise InvalidValueError('`max_examples` must be an int >= 0, got '
                                    f'{max_examples!r}')
        self.max_examples = max_examples
        self.reset()

    def reset(self) -> None:
        self.pixels: dict = {}
        self.files = 0
        self.examples: list = []

    def update(self, file: str,
               unlisted: Mapping[int, int]) -> 'UnlistedLabelValues':
        """Add one file's unlisted values.

        Args:
            file: The file the values come from (the label map's path,
                ``seg_map_path``; the image path where there is none).
            unlisted: Raw value -> pixel count, as ``LoadOODAnnotations``
                records it (``ood_unlisted``); empty when every value is
                listed.
        """
        if not isinstance(file, str):
            raise InvalidTypeError(f'`file` must be a str (a path), got '
                                   f'{type(file).__name__}')
        counts = _check_counts(unlisted, 'unlisted')
        if counts:
            self._add(counts, 1, [(file, counts)])
        return self

    def _add(self, pixels: Mapping[int, int], files: int,
             examples: list) -> None:
        for v, n in pixels.items():
            self.pixels[v] = self.pixels.get(v, 0) + n
        self.pixels = dict(sorted(self.pixels.items()))
        self.files += files
        self.examples = sorted(
            self.examples + [(f, dict(c)) for f, c in examples],
            key=lambda e: (e[0], tuple(e[1].items())))[:self.max_examples]

    def state_dict(self) -> dict:
        return dict(pixels=dict(self.pixels), files=self.files,
                    examples=[(f, dict(c)) for f, c in self.examples])

    def load_state_dict(self, state: dict) -> 'UnlistedLabelValues':
        """Add ``state`` (another accumulator's :meth:`state_dict`)."""
        self._add(_check_counts(state['pixels'], 'pixels'),
                  int(state['files']),
                  [(f, _check_counts(c, 'examples'))
                   for f, c in state['examples']])
        return self

    def compute(self) -> dict:
        """The summary, JSON-friendly (string keys).

        Returns:
            dict: ``voided_pixels`` (pixels of unlisted values, all
            evaluated as void), ``files`` (label files holding any),
            ``values`` (``{str(raw value): pixels}``, ascending values)
            and ``examples`` (``[{'file': path, 'values': {...}}]``, up to
            ``max_examples``, ascending paths).
        """
        return dict(
            voided_pixels=int(sum(self.pixels.values())),
            files=int(self.files),
            values={str(v): int(n) for v, n in self.pixels.items()},
            examples=[dict(file=f, values={str(v): int(n)
                                           for v, n in c.items()})
                      for f, c in self.examples])


def _values_text(values: Mapping) -> str:
    return ', '.join(f'{v}: {n} px' for v, n in values.items())


def unlisted_values_message(dataset_name: str,
                            summary: Mapping) -> Optional[str]:
    """One warning text for a dataset's unlisted label values.

    Args:
        dataset_name: The dataset (preset) name, first in the text.
        summary: :meth:`UnlistedLabelValues.compute` (or the same dict read
            back from ``results.json``).

    Returns:
        str | None: The text (files, values, pixel counts and how to fix
        it), or ``None`` when no file holds an unlisted value.
    """
    files = int(summary.get('files', 0))
    if not files:
        return None
    examples = list(summary.get('examples', []))
    shown = [f"{e['file']} ({_values_text(e['values'])})" for e in examples]
    more = files - len(examples)
    if shown and more > 0:
        shown.append(f'and {more} more file{"s" if more > 1 else ""}')
    shown = f" Files: {'; '.join(shown)}." if shown else ''
    values = list(summary['values'])
    example_map = ', '.join(f'{v}: 255' for v in values[:3])
    return (
        f'{dataset_name}: {files} label '
        f'{"files hold" if files > 1 else "file holds"} raw values that '
        "the dataset's `value_map` does not list, "
        f"so their {summary['voided_pixels']} pixels were evaluated as "
        f"void (255), by raw value: {_values_text(summary['values'])}.{shown} "
        'If a value is a real label, add it to the dataset\'s `value_map` '
        '(raw value -> 0 ID, 1 OOD or 255 void, e.g. value_map={..., '
        f'{example_map}}} in the dataset config); values between the '
        "classes' values usually come from masks resized with "
        'interpolation instead of nearest neighbour: fix the label files.')


def warn_unlisted_values(dataset_name: str,
                         summary: Mapping) -> Optional[str]:
    """Warn (:class:`UnlistedLabelValueWarning`) with
    :func:`unlisted_values_message`, if there is anything to report.

    Args:
        dataset_name: As in :func:`unlisted_values_message`.
        summary: As in :func:`unlisted_values_message`.

    Returns:
        str | None: The text warned, or ``None``.
    """
    msg = unlisted_values_message(dataset_name, summary)
    if msg is not None:
        warnings.warn(msg, UnlistedLabelValueWarning, stacklevel=2)
    return msg
