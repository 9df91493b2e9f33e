"""The calibration file: one scorer, one threshold, and what they were
fitted for.

``tools/calibrate_ood.py`` writes it; ``OODSegmentor``, ``OODInferencer``,
``tools/ood_infer.py`` and ``tools/export_onnx.py`` read it. A pixel is
OOD when its score is at or above the threshold (``score >= threshold``,
the convention of every metric in the package). JSON, schema version 2::

    {
      "format": "mmseg_ood.calibration", "schema_version": 2,
      "version": 2,
      "package_version": "0.2.0", "created": "2026-11-22T05:00:00+00:00",
      "scorer": {"name": "energy", "config": {"type": "energy"},
                 "state": null},
      "threshold": -3.21, "decision": "score >= threshold",
      "fit_sha256": "...",
      "method": {"rule": "id_fpr", "target": 0.01, "dataset": "val",
                 "description": "..."},
      "achieved": {"id_fpr": {"value": 0.0099, "low": 0.007, "high": 0.013,
                              "level": 0.95, "pixels": 1234, "of": 124567,
                              "images": 50, "interval": "..."}, ...},
      "data": {"images": 50, "id_pixels": 124567, "ood_pixels": 0},
      "model": {"config": "...", "checkpoint": "...",
                "state_dict_sha256": "...",
                "definition": {"backbone": "...", "decode_head": "...",
                               ...},
                "num_classes": 6, "classes": [...]},
      "ood_label": null
    }

``scorer.config`` is the scorer's config dict (the tuned ``eta`` /
``delta`` / ``T`` included); ``scorer.state`` the fitted state of a
scorer that has one (SML's per-class statistics), else ``null``.
``ood_label`` is the label OOD pixels get in ``pred_sem_seg`` (``null``:
``num_classes``, a new "unknown" class).

**What the threshold is bound to.** A threshold means something only for
the model and the scorer it was fitted on, so the file records them and
every reader checks them (:meth:`OODCalibration.check_matches`):

- ``model.state_dict_sha256``: the weights
  (:func:`~mmseg_ood.utils.checkpoint.state_dict_sha256`: names, dtypes,
  shapes and bytes of the parameters), not the checkpoint file's bytes, so
  the same weights re-saved, converted to a weights-only file or loaded
  with DDP's ``module.`` prefix still match;
- ``model.classes`` / ``model.num_classes``: the class names;
- ``model.definition``: a SHA-256 per section of the config's model
  definition (:func:`model_definition`: what inference runs, training-only
  keys left out), so a config whose backbone, head, test mode or
  preprocessing differs is refused, naming the sections;
- ``fit_sha256``: a SHA-256 of the scorer (name, config, state) and the
  threshold as written, so a file edited to name another scorer, or with
  another state or threshold, is refused (the achieved rates describe the
  threshold written, for that scorer).

Schema version 1 (mmseg_ood 0.2.0 and earlier, ``"version": 1`` and no
``schema_version``) bound the threshold to the checkpoint file's SHA-256
(``model.checkpoint_sha256``) and had no ``fit_sha256``; it is still read
and checked that way (re-saved weights are refused: calibrate again to
bind the file to the weights). Every field is checked on reading: a
missing field, one of the wrong type (nested ones included), a threshold
that is not a finite number or a newer schema is a
:class:`~mmseg_ood.errors.DamagedFileError` naming the file and the field.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import math
import os
import os.path as osp
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence, Union

from ..errors import (DamagedFileError, InvalidTypeError, InvalidValueError,
                      MissingInputError, UserError)
from ..utils.checkpoint import (file_sha256, load_checkpoint_file,
                                state_dict_sha256)
from ..utils.files import (check_schema_version, dump_json, expect_field,
                           json_safe, load_json)
from ..version import __version__

__all__ = ['OODCalibration', 'CalibrationMismatchError', 'FORMAT',
           'VERSION', 'SCHEMA_VERSION', 'DECISION', 'RULES',
           'check_ood_label', 'check_threshold', 'check_rate', 'decide_ood',
           'model_definition', 'fit_sha256']

FORMAT = 'mmseg_ood.calibration'
#: The schema written: 2 binds the threshold to the weights, the classes
#: and the model definition, and checksums scorer and threshold; 1 (read
#: too) bound it to the checkpoint file's bytes.
SCHEMA_VERSION = 2
#: The oldest schema read.
OLDEST_SCHEMA = 1
#: ``version`` is written equal to ``schema_version``: mmseg_ood 0.2.0
#: and earlier read only ``version`` and refuse any but 1, by name.
VERSION = SCHEMA_VERSION
DECISION = 'score >= threshold'
#: How a threshold is chosen: the ID false-positive rate on ID data (no OOD
#: labels), the TPR or the best F1 on a labelled OOD set.
RULES = ('id_fpr', 'tpr', 'best_f1')

_SHA256 = re.compile(r'^[0-9a-f]{64}$')
#: Keys of a model config that only training reads, and the registry
#: scope (where the types are looked up, set by some loaders and not by
#: others), left out of :func:`model_definition` at any depth; and the data
#: preprocessor's training-only padding and augmentation settings.
_TRAINING_ONLY = ('train_cfg', 'init_cfg', 'pretrained', 'sampler',
                  '_scope_')
_PREPROCESSOR_TRAINING_ONLY = ('size', 'size_divisor', 'batch_augments',
                               'seg_pad_val')
#: Sections of a segmentor config that inference does not run.
_NOT_INFERENCE = ('auxiliary_head', )


def check_ood_label(value, name: str = '`ood_label`') -> Optional[int]:
    """``None`` or an int in [0, 255] (labels are stored as uint8 PNGs);
    else a ``ValueError`` naming ``name``.

    Args:
        value: The label given to OOD pixels in a written label map, or
            ``None`` for none.
        name: How the message names the value.

    Returns:
        int or None: ``value`` unchanged.
    """
    if value is not None and (isinstance(value, bool) or not isinstance(
            value, int) or not 0 <= value <= 255):
        raise InvalidValueError(
            f'{name} must be None or an int in [0, 255], got '
            f'{value!r}')
    return value


def check_threshold(value, name: str = '`threshold`') -> float:
    """A finite number, as float; else a ``ValueError`` naming ``name``.

    Args:
        value: The threshold (bools are rejected).
        name: How the message names the value.

    Returns:
        float: ``value`` as a Python float.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise InvalidValueError(
            f'{name} must be a finite number, got {value!r}')
    return float(value)


def check_rate(value, name: str) -> float:
    """A rate in (0, 1), as float; else a ``ValueError`` naming ``name``.

    Args:
        value: The rate, e.g. the target of the ``'id_fpr'`` / ``'tpr'``
            rule (bools are rejected; 0 and 1 themselves too).
        name: How the message names the value.

    Returns:
        float: ``value`` as a Python float.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not 0.0 < value < 1.0:
        raise InvalidValueError(
            f'{name} must be a rate in (0, 1), got {value!r}')
    return float(value)


def decide_ood(scores, threshold: float):
    """The OOD mask of a score map (tensor or array): ``scores >=
    threshold``, and fail-safe: a NaN score (``scores != scores``) is OOD,
    never silently in-distribution.

    Args:
        scores: OOD scores of any shape (``torch.Tensor`` or
            ``np.ndarray``), higher = more OOD.
        threshold: The calibrated threshold.

    Returns:
        Tensor or np.ndarray: A bool mask of the shape of ``scores``, of
        the same kind.
    """
    return (scores >= threshold) | (scores != scores)


class CalibrationMismatchError(InvalidValueError):
    """A calibration used with a model (weights, classes, config) or
    scorer it was not made for, or whose scorer and threshold were edited
    after it was written."""


def _utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec='seconds')


def _plain(value):
    """A config value as plain JSON values (classes and functions by their
    dotted names), for hashing."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, type) or callable(value):
        return f'{getattr(value, "__module__", "")}.' \
            f'{getattr(value, "__qualname__", repr(value))}'
    return repr(value)


def _type_name(cfg) -> str:
    t = cfg.get('type') if isinstance(cfg, Mapping) else None
    return t if isinstance(t, str) else getattr(t, '__name__', str(t))


def _inference_part(value, under: str = ''):
    """``value`` without the keys only training reads; SyncBN as BN (the
    same layer at inference; the tools turn one into the other)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in _TRAINING_ONLY or k.startswith('loss'):
                continue
            if under == 'data_preprocessor' and \
                    k in _PREPROCESSOR_TRAINING_ONLY:
                continue
            if k == 'type' and v == 'SyncBN':
                v = 'BN'
            out[k] = _inference_part(v, k)
        return out
    if isinstance(value, list):
        return [_inference_part(v, under) for v in value]
    return value


def model_definition(model_cfg) -> dict:
    """SHA-256 (hex) of each section of a config's model definition, as far
    as inference runs it.

    The segmentor of an ``OODSegmentor`` config is taken (a deployment
    wraps the plain model); the registry scope (``_scope_``), the keys
    only training reads (``train_cfg``, ``init_cfg``, ``pretrained``,
    ``sampler``, every ``loss*``, the data preprocessor's ``size`` /
    ``size_divisor`` / ``batch_augments`` / ``seg_pad_val``) and the
    auxiliary head are left out; ``SyncBN`` counts as ``BN``.

    Args:
        model_cfg: ``cfg.model`` (a dict or ``ConfigDict``), or a
            ``Config`` (its ``model`` is taken).

    Returns:
        dict: section (``type``, ``backbone``, ``decode_head``,
        ``test_cfg``, ``data_preprocessor``, ...) -> SHA-256 of its
        canonical JSON.
    """
    if not isinstance(model_cfg, Mapping):
        model = getattr(model_cfg, 'model', None)
        if not isinstance(model, Mapping):
            raise InvalidTypeError(
                '`model_cfg` must be a model config dict or a Config, got '
                f'{type(model_cfg).__name__}')
        model_cfg = model
    model = _plain(model_cfg)
    while _type_name(model) == 'OODSegmentor' and isinstance(
            model.get('segmentor'), dict):
        model = model['segmentor']
    model = _inference_part(model)
    return {
        k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()
        for k, v in sorted(model.items()) if k not in _NOT_INFERENCE
    }


def fit_sha256(scorer_name: str, scorer_config: dict,
               scorer_state: Optional[dict], threshold: float) -> str:
    """SHA-256 (hex) of what the threshold was fitted for, as the file
    holds it: the scorer's name, config and state, and the threshold.

    Reading a file recomputes it, so a scorer or threshold edited by hand
    after calibration is detected (:class:`CalibrationMismatchError`).

    Args:
        scorer_name: The scorer's name as the file records it.
        scorer_config: Its config dict, ``type`` included.
        scorer_state: Its fitted state (e.g. SML's per-class statistics),
            or ``None`` for a scorer without one.
        threshold: The threshold; hashed as a float.

    Returns:
        str: 64 lowercase hex digits, of the canonical JSON (sorted keys)
        of ``[scorer_name, scorer_config, scorer_state, threshold]``.
    """
    payload = _plain(json_safe([scorer_name, scorer_config, scorer_state,
                                float(threshold)]))
    return hashlib.sha256(json.dumps(payload, sort_keys=True,
                                     allow_nan=False).encode()).hexdigest()


def _short(sha: Optional[str]) -> str:
    return f'{sha[:12]}...' if sha else 'unknown'


def _check_sha(value, name: str, where: str) -> Optional[str]:
    if value is not None and (not isinstance(value, str)
                              or not _SHA256.match(value)):
        raise InvalidValueError(
            f'{where}: {name} must be a 64-character lowercase hex SHA-256, '
            f'got {value!r}')
    return value


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
        checkpoint_sha256: SHA-256 of the checkpoint file: the binding of
            schema 1 files, checked only when ``state_dict_sha256`` is
            ``None``. New calibrations give ``state_dict_sha256``.
        scorer_state: Fitted state of the scorer (SML statistics), or
            ``None``.
        achieved: Rates reached on the calibration data, by name
            (``'id_fpr'``, ``'tpr'``, ...), each a dict with ``value``,
            ``low``, ``high``, ``level`` and counts.
        data: What the calibration data held: ``images``, ``id_pixels``,
            ``ood_pixels``.
        model: ``config``, ``checkpoint``, ``num_classes``, ``classes`` and
            ``definition`` (:func:`model_definition`).
        ood_label: Label of OOD pixels in ``pred_sem_seg`` (``None``:
            ``num_classes``).
        description: How the threshold was chosen, in words.
        package_version / created: Provenance (filled in when ``None``).
        source: The file it was read from (messages name it).
        state_dict_sha256: :func:`~mmseg_ood.utils.checkpoint.
            state_dict_sha256` of the weights it was fitted on.
        schema_version: The schema of the file it was read from
            (:data:`SCHEMA_VERSION` for a new one).

    Raises:
        InvalidValueError: an argument out of its range, or neither
            ``state_dict_sha256`` nor ``checkpoint_sha256`` (a threshold
            bound to no weights).
    """
    scorer_name: str
    scorer_config: dict
    threshold: float
    rule: str
    target: Optional[float]
    dataset: str
    checkpoint_sha256: Optional[str] = None
    scorer_state: Optional[dict] = None
    achieved: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    ood_label: Optional[int] = None
    description: str = ''
    package_version: Optional[str] = None
    created: Optional[str] = None
    source: Optional[str] = None  # the file it was read from
    state_dict_sha256: Optional[str] = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        where = self.source or 'calibration'
        if not isinstance(self.scorer_name, str) or not self.scorer_name:
            raise InvalidValueError(
                f'{where}: scorer.name must be a non-empty '
                f'string, got {self.scorer_name!r}')
        if not isinstance(self.scorer_config, dict) or \
                'type' not in self.scorer_config:
            raise InvalidValueError(
                f'{where}: scorer.config must be a dict with '
                f'a "type", got {self.scorer_config!r}')
        self.threshold = check_threshold(self.threshold,
                                         f'{where}: threshold')
        if self.rule not in RULES:
            raise InvalidValueError(
                f'{where}: method.rule must be one of {RULES}, '
                f'got {self.rule!r}')
        check_ood_label(self.ood_label, f'{where}: ood_label')
        if self.target is not None:
            check_rate(self.target, f'{where}: method.target')
        if not isinstance(self.model, dict):
            raise InvalidValueError(
                f'{where}: model must be a dict, got {self.model!r}')
        _check_sha(self.checkpoint_sha256, 'model.checkpoint_sha256', where)
        _check_sha(self.state_dict_sha256, 'model.state_dict_sha256', where)
        if self.state_dict_sha256 is None and self.checkpoint_sha256 is None:
            raise InvalidValueError(
                f'{where}: a calibration must name the weights it was '
                'fitted on: give state_dict_sha256 (mmseg_ood.utils.'
                'state_dict_sha256 of the checkpoint)')
        self.package_version = self.package_version or __version__
        self.created = self.created or _utc_now()

    # scorer ------------------------------------------------------------
    def build_scorer(self):
        """The calibrated scorer (its fitted state loaded).

        Raises:
            DamagedFileError: (read from a file) the scorer's config or
                state does not build (an unknown scorer, an argument it
                does not take, a state of another shape); the message
                names the file.
        """
        from ..scorers import build_scorer
        where = self.source or 'calibration'
        try:
            scorer = build_scorer(copy.deepcopy(self.scorer_config))
        except (InvalidValueError, InvalidTypeError) as e:
            if self.source is None:
                raise
            raise DamagedFileError(f'{where}: scorer.config: {e}') from None
        if self.scorer_state is not None:
            if not hasattr(scorer, 'load_state_dict'):
                raise InvalidValueError(
                    f'{where}: scorer '
                    f'{self.scorer_name!r} ({self.scorer_config["type"]}) '
                    'has a "state" but takes none')
            try:
                scorer.load_state_dict(self.scorer_state)
            except (UserError, KeyError, TypeError, ValueError,
                    IndexError) as e:
                raise (DamagedFileError if self.source else
                       InvalidValueError)(
                    f'{where}: scorer.state does not fit scorer '
                    f'{self.scorer_name!r}: {type(e).__name__}: '
                    f'{e}') from None
        return scorer

    def decide(self, scores):
        """The OOD mask of a score map (tensor or array): ``scores >=
        threshold``, NaN scores included (fail-safe, see
        :func:`decide_ood`)."""
        return decide_ood(scores, self.threshold)

    # checks ------------------------------------------------------------
    def check_matches(self, checkpoint=None,
                      scorer: Union[None, str, dict] = None,
                      checkpoint_sha256: Optional[str] = None, *,
                      state_dict_sha256: Optional[str] = None,
                      classes: Optional[Sequence[str]] = None,
                      model_config=None,
                      config_name: Optional[str] = None,
                      unsafe_load: bool = False) -> None:
        """Refuse use with other weights, classes, model definition or
        scorer than the calibration was made for.

        Each check runs where both sides are known: the weights when the
        calibration binds them and ``checkpoint`` (or a hash) is given, the
        classes when both lists are non-empty, the model definition when
        the calibration records one and ``model_config`` is given.

        Args:
            checkpoint: The checkpoint in use: a file (loaded and hashed,
                :func:`~mmseg_ood.utils.checkpoint.state_dict_sha256`; a
                schema-1 calibration hashes the file's bytes) or a loaded
                checkpoint / state dict (nothing loaded again).
            scorer: The scorer asked for (a name or a config dict), or
                ``None`` (the calibration's own).
            checkpoint_sha256: The checkpoint file's SHA-256, if known
                (schema-1 calibrations).
            state_dict_sha256: The weights' hash, if known already.
            classes: The class names of the model in use.
            model_config: The model config in use (``cfg.model`` or a
                ``Config``), compared with ``model.definition``.
            config_name: The config, as messages name it.
            unsafe_load: Load ``checkpoint`` with full pickle (trusted
                files only, as ``--unsafe-load``).

        Raises:
            CalibrationMismatchError: naming the calibration and what
                differs (both checkpoints, the first differing class, the
                config sections, or both scorers).
            InvalidValueError: the calibration binds the weights but only
                a file hash was given (nothing to compare).
        """
        self._check_weights(checkpoint, checkpoint_sha256, state_dict_sha256,
                            unsafe_load)
        if classes is not None:
            self.check_classes(classes, config_name or 'the model')
        if model_config is not None:
            self.check_model_definition(model_config, config_name)
        if scorer is not None:
            self._check_scorer(scorer)

    def _where(self) -> str:
        return self.source or 'the calibration'

    def _check_weights(self, checkpoint, checkpoint_sha256,
                       state_dict_sha256_, unsafe_load) -> None:
        if checkpoint is None and checkpoint_sha256 is None and \
                state_dict_sha256_ is None:
            return
        where = self._where()
        made_for = self.model.get('checkpoint') or 'another checkpoint'
        path = checkpoint if isinstance(checkpoint, (str, os.PathLike)) \
            else None
        used = path or 'these weights'
        if self.state_dict_sha256 is not None:
            given = state_dict_sha256_
            if given is None and isinstance(checkpoint, Mapping):
                given = state_dict_sha256(checkpoint)
            elif given is None and path is not None:
                given = state_dict_sha256(
                    load_checkpoint_file(os.fspath(path),
                                         unsafe=unsafe_load), path)
            if given is None:
                raise InvalidValueError(
                    f'{where} is bound to the weights (state_dict_sha256); '
                    'give the checkpoint (a file or the loaded dict) or its '
                    'state_dict_sha256, not the file hash')
            if given != self.state_dict_sha256:
                raise CalibrationMismatchError(
                    f'{where} was made for the weights of {made_for} '
                    f'(state dict SHA-256 {_short(self.state_dict_sha256)}'
                    f'), not for {used} ({_short(given)}): its threshold '
                    'means nothing for other weights; run '
                    'tools/calibrate_ood.py for this checkpoint')
            return
        given = checkpoint_sha256
        if given is None and path is not None:
            given = file_sha256(os.fspath(path))
        if given is None:
            raise CalibrationMismatchError(
                f'{where} (schema version {self.schema_version}) is bound '
                "to the checkpoint file's bytes, and no file was given to "
                'compare; give the checkpoint file, or run '
                'tools/calibrate_ood.py again to bind it to the weights')
        if given != self.checkpoint_sha256:
            raise CalibrationMismatchError(
                f'{where} was made for checkpoint {made_for} (file SHA-256 '
                f'{_short(self.checkpoint_sha256)}), not for {used} '
                f'(SHA-256 {_short(given)}): its threshold means nothing '
                'for other weights; run tools/calibrate_ood.py for this '
                'checkpoint' + (
                    ' (this calibration is of schema version 1, bound to '
                    "the file's bytes: the same weights saved again are "
                    'refused too; a new calibration is bound to the '
                    'weights)' if self.schema_version < 2 else ''))

    def _check_scorer(self, scorer) -> None:
        asked = scorer if isinstance(scorer, dict) else dict(type=scorer)
        own = dict(self.scorer_config)
        same = asked == own if isinstance(scorer, dict) else \
            scorer in (self.scorer_name, own['type'])
        if not same:
            raise CalibrationMismatchError(
                f'{self._where()} calibrates scorer {self.scorer_name!r} '
                f'({own}), not {scorer!r}: a threshold of one scorer '
                'means nothing for another')

    def check_classes(self, classes: Sequence[str], model: str) -> None:
        """Refuse a model whose class names differ from the ones the
        calibration records (nothing to check when either list is empty).

        Raises:
            CalibrationMismatchError: naming the calibration, ``model`` and
                the first class that differs (or the counts).
        """
        made_for = list(self.model.get('classes') or [])
        classes = list(classes or [])
        if not made_for or not classes or made_for == classes:
            return
        if len(made_for) != len(classes):
            what = f'{len(made_for)} classes, not {len(classes)}'
        else:
            i = next(i for i, (a, b) in enumerate(zip(made_for, classes))
                     if a != b)
            what = (f'class {i} {made_for[i]!r}, not {classes[i]!r}')
        raise CalibrationMismatchError(
            f'{self._where()} was made for a model with {what} '
            f'({model}): calibrate again for this model')

    def check_model_definition(self, model_config,
                               config_name: Optional[str] = None) -> None:
        """Refuse a config whose model definition (as inference runs it,
        :func:`model_definition`) differs from the calibrated one (nothing
        to check when the calibration records none).

        Raises:
            CalibrationMismatchError: naming the calibration, the config
                and the sections that differ.
        """
        made_for = self.model.get('definition')
        if not made_for:
            return
        own = model_definition(model_config)
        differ = sorted(k for k in set(made_for) | set(own)
                        if made_for.get(k) != own.get(k))
        if not differ:
            return
        calibrated = self.model.get('config') or 'another config'
        raise CalibrationMismatchError(
            f'{self._where()} was made for the model of {calibrated}; the '
            f'model of {config_name or "this config"} differs in '
            f'{", ".join(differ)} (e.g. another head, test mode or '
            "preprocessing): the scores, and so the threshold's meaning, "
            'differ; calibrate again with this config')

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
        """The file's contents (schema :data:`SCHEMA_VERSION`)."""
        model = dict(self.model)
        model.pop('checkpoint_sha256', None)
        model.pop('state_dict_sha256', None)
        if self.state_dict_sha256 is not None:
            model['state_dict_sha256'] = self.state_dict_sha256
        if self.checkpoint_sha256 is not None:
            model['checkpoint_sha256'] = self.checkpoint_sha256
        return dict(
            format=FORMAT, schema_version=SCHEMA_VERSION, version=VERSION,
            package_version=self.package_version, created=self.created,
            scorer=dict(name=self.scorer_name, config=self.scorer_config,
                        state=self.scorer_state),
            threshold=self.threshold, decision=DECISION,
            fit_sha256=fit_sha256(self.scorer_name, self.scorer_config,
                                  self.scorer_state, self.threshold),
            method=dict(rule=self.rule, target=self.target,
                        dataset=self.dataset,
                        description=self.description),
            achieved=self.achieved, data=self.data, model=model,
            ood_label=self.ood_label)

    @classmethod
    def from_dict(cls, d, source: Optional[str] = None) -> 'OODCalibration':
        """Read :meth:`to_dict`'s form (schema 2) or a schema-1 file.

        Raises:
            DamagedFileError: not a calibration (another format, not a JSON
                object), a schema newer than this mmseg_ood reads, a
                missing field, one of the wrong type (nested ones too), a
                threshold that is not a finite number, a value out of its
                range; the message names the file and the field.
            CalibrationMismatchError: ``scorer.name`` is not
                ``scorer.config.type``, or the scorer or threshold were
                changed after the file was written (``fit_sha256``).
        """
        where = f'calibration file {source}' if source else 'calibration'
        if not isinstance(d, dict):
            raise DamagedFileError(
                f'{where} is not an mmseg_ood calibration file: expected a '
                f'JSON object, got {type(d).__name__}')
        fmt = d.get('format')
        if fmt != FORMAT:
            raise DamagedFileError(
                f'{where} is not an mmseg_ood calibration file (format '
                f'{fmt!r}, expected {FORMAT!r})')
        version = cls._schema_version(d, source, where)
        decision = expect_field(d, 'decision', str, where, default=DECISION)
        if decision != DECISION:
            raise DamagedFileError(f'{where}: decision {decision!r} is not '
                                   f'{DECISION!r}')
        scorer = expect_field(d, 'scorer', dict, where)
        name = expect_field(scorer, 'name', str, f'{where}: scorer')
        config = expect_field(scorer, 'config', dict, f'{where}: scorer')
        type_ = expect_field(config, 'type', str, f'{where}: scorer.config')
        state = expect_field(scorer, 'state', (dict, type(None)),
                             f'{where}: scorer', default=None)
        if not name:
            raise DamagedFileError(f'{where}: scorer.name is empty')
        threshold = expect_field(d, 'threshold', float, where)
        if not math.isfinite(threshold):
            raise DamagedFileError(f'{where}: the field \'threshold\' must '
                                   f'be a finite number, got {threshold!r}')
        if name != type_:
            raise CalibrationMismatchError(
                f'{where}: scorer.name {name!r} is not scorer.config.type '
                f'{type_!r}: the file was edited, and it is not known which '
                'scorer the threshold was fitted for; run '
                'tools/calibrate_ood.py again')
        if version >= 2:
            written = expect_field(d, 'fit_sha256', str, where)
            if written != fit_sha256(name, config, state, threshold):
                raise CalibrationMismatchError(
                    f'{where}: the scorer (scorer.name, scorer.config, '
                    'scorer.state) or the threshold differ from what '
                    'tools/calibrate_ood.py wrote (fit_sha256 does not '
                    f'match): a threshold is fitted for one scorer ({name!r} '
                    'now) and its recorded rates hold only for it; run '
                    'tools/calibrate_ood.py again instead of editing')
        method = expect_field(d, 'method', dict, where)
        mwhere = f'{where}: method'
        rule = expect_field(method, 'rule', str, mwhere)
        if rule not in RULES:
            raise DamagedFileError(f'{where}: method.rule must be one of '
                                   f'{RULES}, got {rule!r}')
        target = expect_field(method, 'target', (float, type(None)), mwhere,
                              default=None)
        if target is not None and not 0.0 < target < 1.0:
            raise DamagedFileError(f'{where}: method.target must be a rate '
                                   f'in (0, 1), got {target!r}')
        model = expect_field(d, 'model', dict, where)
        binding = cls._model_fields(model, version, f'{where}: model')
        ood_label = expect_field(d, 'ood_label', (int, type(None)), where,
                                 default=None)
        if ood_label is not None and not 0 <= ood_label <= 255:
            raise DamagedFileError(f'{where}: ood_label must be null or an '
                                   f'int in [0, 255], got {ood_label!r}')
        strings = {k: expect_field(d, k, (str, type(None)), where,
                                   default=None)
                   for k in ('package_version', 'created')}
        return cls(
            scorer_name=name, scorer_config=config, scorer_state=state,
            threshold=threshold, rule=rule, target=target,
            dataset=expect_field(method, 'dataset', str, mwhere, default=''),
            description=expect_field(method, 'description', str, mwhere,
                                     default=''),
            achieved=expect_field(d, 'achieved', dict, where, default={}),
            data=expect_field(d, 'data', dict, where, default={}),
            model={k: v for k, v in model.items()
                   if k not in ('checkpoint_sha256', 'state_dict_sha256')},
            ood_label=ood_label, source=source, schema_version=version,
            **binding, **strings)

    @staticmethod
    def _schema_version(d: dict, source, where: str) -> int:
        if 'schema_version' in d:
            return check_schema_version(d, source or 'calibration',
                                        'calibration file', SCHEMA_VERSION,
                                        oldest=OLDEST_SCHEMA)
        # schema 1 wrote only "version": 1
        version = expect_field(d, 'version', int, where)
        if version != 1:
            raise DamagedFileError(
                f'{where} has calibration format version {version!r} and '
                'no schema_version; this mmseg_ood '
                f'({__version__}) reads schema versions {OLDEST_SCHEMA} to '
                f'{SCHEMA_VERSION}: write it again with '
                'tools/calibrate_ood.py')
        return 1

    @staticmethod
    def _model_fields(model: dict, version: int, where: str) -> dict:
        """The binding fields of ``model``, checked; the other fields'
        types checked in place."""
        for key in ('config', 'checkpoint'):
            expect_field(model, key, (str, type(None)), where, default=None)
        expect_field(model, 'num_classes', (int, type(None)), where,
                     default=None)
        classes = expect_field(model, 'classes', (list, type(None)), where,
                               default=None)
        for i, c in enumerate(classes or []):
            if not isinstance(c, str):
                raise DamagedFileError(
                    f'{where}.classes[{i}] must be a string, got '
                    f'{type(c).__name__} {c!r}')
        definition = expect_field(model, 'definition', (dict, type(None)),
                                  where, default=None)
        for k, v in (definition or {}).items():
            if not isinstance(v, str) or not _SHA256.match(v):
                raise DamagedFileError(
                    f'{where}.definition[{k!r}] must be a hex SHA-256, got '
                    f'{v!r}')
        out = {}
        keys = ('checkpoint_sha256', ) if version < 2 else (
            'state_dict_sha256', 'checkpoint_sha256')
        for key in keys:
            value = expect_field(model, key, (str, type(None)), where,
                                 default=None)
            if value is not None and not _SHA256.match(value):
                raise DamagedFileError(
                    f'{where}.{key} must be a 64-character lowercase hex '
                    f'SHA-256, got {value!r}')
            out[key] = value
        if not any(out.values()):
            need = ' or '.join(f'{where}.{k}' for k in keys)
            raise DamagedFileError(
                f'{where}: the field {keys[0]!r} is missing ({need} binds '
                'the threshold to the weights it was fitted on)')
        return out

    def save(self, path: str, inputs: Iterable[Optional[str]] = (),
             what: str = 'calibration file') -> str:
        """Write the JSON atomically (a temporary file, then
        ``os.replace``); return ``path``.

        Args:
            path: The file (its folder must exist).
            inputs: Files of the run it must not be (the checkpoint, the
                config...): refused by any name, links included.
            what: How messages name the output (``'--out'``).

        Raises:
            OutputPathError: ``path`` is one of ``inputs``, a folder, or in
                a folder that does not exist; nothing is written.
        """
        dump_json(self.to_dict(), path, inputs, what)
        return path

    @classmethod
    def load(cls, path: str) -> 'OODCalibration':
        """Read a calibration file (a directory: its ``calibration.json``).

        Raises:
            MissingInputError: no such file (a ``FileNotFoundError``).
            DamagedFileError: not UTF-8, not JSON, nested too deeply, or
                not a valid calibration (see :meth:`from_dict`), naming
                the file.
            CalibrationMismatchError: scorer and threshold edited (see
                :meth:`from_dict`).
        """
        path = os.fspath(path)
        if osp.isdir(path):
            path = osp.join(path, 'calibration.json')
        if not osp.exists(path):
            raise MissingInputError(f'calibration file {path} not found '
                                    '(written by tools/calibrate_ood.py)')
        d = load_json(path, what='calibration file')
        return cls.from_dict(d, source=path)
