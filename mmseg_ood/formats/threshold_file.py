"""The calibration file: one scorer, one threshold, and where they came from.

``tools/calibrate_ood.py`` writes it; ``OODSegmentor``, ``OODInferencer``,
``tools/ood_infer.py`` and ``tools/export_onnx.py`` read it. A pixel is
OOD when its score is at or above the threshold (``score >= threshold``,
the convention of every metric in the package). JSON, versioned::

    {
      "format": "mmseg_ood.calibration", "version": 1,
      "package_version": "0.2.0", "created": "2026-11-22T05:00:00+00:00",
      "scorer": {"name": "energy", "config": {"type": "energy"},
                 "state": null},
      "threshold": -3.21, "decision": "score >= threshold",
      "method": {"rule": "id_fpr", "target": 0.01, "dataset": "val",
                 "description": "..."},
      "achieved": {"id_fpr": {"value": 0.0099, "low": 0.007, "high": 0.013,
                              "level": 0.95, "pixels": 1234, "of": 124567,
                              "images": 50, "interval": "..."}, ...},
      "data": {"images": 50, "id_pixels": 124567, "ood_pixels": 0},
      "model": {"config": "...", "checkpoint": "...",
                "checkpoint_sha256": "...", "num_classes": 6,
                "classes": [...]},
      "ood_label": null
    }

``scorer.config`` is the scorer's config dict (the tuned ``eta`` /
``delta`` / ``T`` included); ``scorer.state`` the fitted state of a
scorer that has one (SML's per-class statistics), else ``null``.
``ood_label`` is the label OOD pixels get in ``pred_sem_seg`` (``null``:
``num_classes``, a new "unknown" class).
"""
from __future__ import annotations

import copy
import datetime
import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Optional, Union

from ..version import __version__

__all__ = ['OODCalibration', 'CalibrationMismatchError', 'FORMAT',
           'VERSION', 'DECISION', 'RULES', 'check_ood_label',
           'check_threshold', 'check_rate', 'decide_ood']

FORMAT = 'mmseg_ood.calibration'
VERSION = 1
DECISION = 'score >= threshold'
#: How a threshold is chosen: the ID false-positive rate on ID data (no OOD
#: labels), the TPR or the best F1 on a labelled OOD set.
RULES = ('id_fpr', 'tpr', 'best_f1')


def check_ood_label(value, name: str = '`ood_label`') -> Optional[int]:
    """``None`` or an int in [0, 255] (labels are stored as uint8 PNGs);
    else a ``ValueError`` naming ``name``."""
    if value is not None and (isinstance(value, bool) or not isinstance(
            value, int) or not 0 <= value <= 255):
        raise ValueError(f'{name} must be None or an int in [0, 255], got '
                         f'{value!r}')
    return value


def check_threshold(value, name: str = '`threshold`') -> float:
    """A finite number, as float; else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value!r}')
    return float(value)


def check_rate(value, name: str) -> float:
    """A rate in (0, 1), as float; else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 < value < 1.0:
        raise ValueError(f'{name} must be a rate in (0, 1), got {value!r}')
    return float(value)


def decide_ood(scores, threshold: float):
    """The OOD mask of a score map (tensor or array): ``scores >=
    threshold``, and fail-safe: a NaN score (``scores != scores``) is OOD,
    never silently in-distribution."""
    return (scores >= threshold) | (scores != scores)


class CalibrationMismatchError(ValueError):
    """A calibration used with a checkpoint or scorer it was not made for."""


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


@dataclass
class OODCalibration:
    """A calibrated OOD decision: ``score >= threshold`` for one scorer.

    Args:
        scorer_name: The scorer's name (e.g. ``'energy'``).
        scorer_config: Its config dict, ``type`` included (what
            :func:`~mmseg_ood.scorers.build_scorer` takes).
        threshold: The decision threshold (finite).
        rule: One of :data:`RULES`.
        target: The rule's target (ID FPR or TPR; ``None`` for
            ``best_f1``).
        dataset: Name of the data the threshold was chosen on.
        checkpoint_sha256: SHA-256 of the checkpoint file.
        scorer_state: Fitted state of the scorer (SML statistics), or
            ``None``.
        achieved: Rates reached on the calibration data, by name
            (``'id_fpr'``, ``'tpr'``, ...), each a dict with ``value``,
            ``low``, ``high``, ``level`` and counts.
        data: What the calibration data held: ``images``, ``id_pixels``,
            ``ood_pixels``.
        model: ``config``, ``checkpoint``, ``num_classes``, ``classes``.
        ood_label: Label of OOD pixels in ``pred_sem_seg`` (``None``:
            ``num_classes``).
        description: How the threshold was chosen, in words.
        package_version / created: Provenance (filled in when ``None``).
    """
    scorer_name: str
    scorer_config: dict
    threshold: float
    rule: str
    target: Optional[float]
    dataset: str
    checkpoint_sha256: str
    scorer_state: Optional[dict] = None
    achieved: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    ood_label: Optional[int] = None
    description: str = ''
    package_version: Optional[str] = None
    created: Optional[str] = None
    source: Optional[str] = None  # the file it was read from

    def __post_init__(self):
        where = self.source or 'calibration'
        if not isinstance(self.scorer_name, str) or not self.scorer_name:
            raise ValueError(f'{where}: scorer.name must be a non-empty '
                             f'string, got {self.scorer_name!r}')
        if not isinstance(self.scorer_config, dict) or \
                'type' not in self.scorer_config:
            raise ValueError(f'{where}: scorer.config must be a dict with '
                             f'a "type", got {self.scorer_config!r}')
        self.threshold = check_threshold(self.threshold,
                                         f'{where}: threshold')
        if self.rule not in RULES:
            raise ValueError(f'{where}: method.rule must be one of {RULES}, '
                             f'got {self.rule!r}')
        check_ood_label(self.ood_label, f'{where}: ood_label')
        if self.target is not None:
            check_rate(self.target, f'{where}: method.target')
        if not isinstance(self.checkpoint_sha256, str) or \
                len(self.checkpoint_sha256) != 64:
            raise ValueError(f'{where}: model.checkpoint_sha256 must be a '
                             '64-character hex SHA-256, got '
                             f'{self.checkpoint_sha256!r}')
        self.package_version = self.package_version or __version__
        self.created = self.created or _utc_now()

    # scorer ------------------------------------------------------------
    def build_scorer(self):
        """The calibrated scorer (its fitted state loaded)."""
        from ..scorers import build_scorer
        scorer = build_scorer(copy.deepcopy(self.scorer_config))
        if self.scorer_state is not None:
            if not hasattr(scorer, 'load_state_dict'):
                raise ValueError(
                    f'{self.source or "calibration"}: scorer '
                    f'{self.scorer_name!r} ({self.scorer_config["type"]}) '
                    'has a "state" but takes none')
            scorer.load_state_dict(self.scorer_state)
        return scorer

    def decide(self, scores):
        """The OOD mask of a score map (tensor or array): ``scores >=
        threshold``, NaN scores included (fail-safe, see
        :func:`decide_ood`)."""
        return decide_ood(scores, self.threshold)

    # checks ------------------------------------------------------------
    def check_matches(self, checkpoint: Optional[str] = None,
                      scorer: Union[None, str, dict] = None,
                      checkpoint_sha256: Optional[str] = None) -> None:
        """Refuse use with another checkpoint or scorer.

        Args:
            checkpoint: The checkpoint file in use (hashed), or ``None``.
            scorer: The scorer asked for (a name or a config dict), or
                ``None`` (the calibration's own).
            checkpoint_sha256: The checkpoint's hash, if known already.

        Raises:
            CalibrationMismatchError: naming both checkpoints (or scorers).
        """
        where = self.source or 'the calibration'
        if checkpoint is not None or checkpoint_sha256 is not None:
            if checkpoint_sha256 is None:
                from ..utils import file_sha256
                checkpoint_sha256 = file_sha256(checkpoint)
            if checkpoint_sha256 != self.checkpoint_sha256:
                made_for = self.model.get('checkpoint') or 'another file'
                raise CalibrationMismatchError(
                    f'{where} was made for checkpoint {made_for} (SHA-256 '
                    f'{self.checkpoint_sha256[:12]}...), not for '
                    f'{checkpoint or "this checkpoint"} (SHA-256 '
                    f'{checkpoint_sha256[:12]}...): its threshold means '
                    'nothing for other weights; run tools/calibrate_ood.py '
                    'for this checkpoint')
        if scorer is not None:
            asked = scorer if isinstance(scorer, dict) else dict(type=scorer)
            own = dict(self.scorer_config)
            same = asked == own if isinstance(scorer, dict) else \
                scorer in (self.scorer_name, own['type'])
            if not same:
                raise CalibrationMismatchError(
                    f'{where} calibrates scorer {self.scorer_name!r} '
                    f'({own}), not {scorer!r}: a threshold of one scorer '
                    'means nothing for another')

    def check_num_classes(self, num_classes: int, model: str) -> None:
        """Refuse a model with another number of classes than the one the
        calibration was made for (``CalibrationMismatchError`` naming the
        calibration and ``model``)."""
        made_for = self.model.get('num_classes')
        if made_for is not None and made_for != num_classes:
            raise CalibrationMismatchError(
                f'{self.source or "the calibration"} was made for a model '
                f'with {made_for} classes, not for {model} with '
                f'{num_classes}')

    # files -------------------------------------------------------------
    def to_dict(self) -> dict:
        return dict(
            format=FORMAT, version=VERSION,
            package_version=self.package_version, created=self.created,
            scorer=dict(name=self.scorer_name, config=self.scorer_config,
                        state=self.scorer_state),
            threshold=self.threshold, decision=DECISION,
            method=dict(rule=self.rule, target=self.target,
                        dataset=self.dataset,
                        description=self.description),
            achieved=self.achieved, data=self.data,
            model=dict(self.model, checkpoint_sha256=self.checkpoint_sha256),
            ood_label=self.ood_label)

    @classmethod
    def from_dict(cls, d: dict, source: Optional[str] = None
                  ) -> 'OODCalibration':
        """Read :meth:`to_dict`'s form; refuse another format or version
        and name a missing field."""
        where = source or 'calibration'
        if not isinstance(d, dict) or d.get('format') != FORMAT:
            got = d.get('format') if isinstance(d, dict) else type(d).__name__
            raise ValueError(f'{where} is not an mmseg_ood calibration file '
                             f'(format {got!r}, expected {FORMAT!r})')
        if d.get('version') != VERSION:
            raise ValueError(f'{where} has calibration format version '
                             f'{d.get("version")!r}; this mmseg_ood '
                             f'({__version__}) reads version {VERSION}')
        if d.get('decision', DECISION) != DECISION:
            raise ValueError(f'{where}: decision {d.get("decision")!r} is not '
                             f'{DECISION!r}')

        def need(obj, key, path):
            if not isinstance(obj, dict) or key not in obj:
                raise ValueError(f'{where} has no "{path}" field')
            return obj[key]

        scorer, method = need(d, 'scorer', 'scorer'), need(d, 'method',
                                                          'method')
        model = need(d, 'model', 'model')
        return cls(
            scorer_name=need(scorer, 'name', 'scorer.name'),
            scorer_config=need(scorer, 'config', 'scorer.config'),
            scorer_state=scorer.get('state'),
            threshold=need(d, 'threshold', 'threshold'),
            rule=need(method, 'rule', 'method.rule'),
            target=method.get('target'),
            dataset=method.get('dataset', ''),
            description=method.get('description', ''),
            checkpoint_sha256=need(model, 'checkpoint_sha256',
                                   'model.checkpoint_sha256'),
            achieved=d.get('achieved') or {},
            data=d.get('data') or {},
            model={k: v for k, v in model.items()
                   if k != 'checkpoint_sha256'},
            ood_label=d.get('ood_label'),
            package_version=d.get('package_version'),
            created=d.get('created'), source=source)

    def save(self, path: str) -> str:
        """Write the JSON (directories created); return ``path``."""
        os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(self.to_dict(), f, indent=2, allow_nan=False)
            f.write('\n')
        return path

    @classmethod
    def load(cls, path: str) -> 'OODCalibration':
        """Read a calibration file (a directory: its ``calibration.json``).

        Raises:
            FileNotFoundError: no such file.
            ValueError: not JSON, or not a calibration of this version,
                naming the file.
        """
        if osp.isdir(path):
            path = osp.join(path, 'calibration.json')
        if not osp.isfile(path):
            raise FileNotFoundError(f'calibration file {path} not found '
                                    '(written by tools/calibrate_ood.py)')
        try:
            with open(path) as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path} is not a JSON file: {e}') from None
        return cls.from_dict(d, source=path)
