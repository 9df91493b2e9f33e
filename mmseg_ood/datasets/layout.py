"""Readable errors for datasets whose files are not where expected."""
from __future__ import annotations

import os.path as osp

from mmseg_ood.errors import MissingInputError


def check_data_dirs(dataset, layout: str, hint: str = '') -> None:
    """Raise ``FileNotFoundError`` naming the missing directory, the
    dataset's expected layout and (optionally) how to obtain it.

    Args:
        dataset: The mmseg dataset being built; its ``data_prefix``
            (``img_path``, ``seg_map_path``) and ``data_root`` are read.
        layout: The expected folder tree, a text with a ``{root}``
            placeholder that is filled with the dataset's ``data_root``.
        hint: A line appended to the message (e.g. where to download
            the dataset); default: none.

    Raises:
        MissingInputError: a ``data_prefix`` folder does not exist (a
            ``FileNotFoundError``).
    """
    for field in ('img_path', 'seg_map_path'):
        path = dataset.data_prefix.get(field)
        if path and not osp.isdir(path):
            raise MissingInputError(
                f'{type(dataset).__name__}: data_prefix.{field} directory '
                f'{path!r} does not exist (data_root={dataset.data_root!r}).'
                ' Expected layout:\n' +
                layout.format(root=dataset.data_root or '<data_root>') +
                (f'\n{hint}' if hint else ''))
