"""Meta classification of OOD segments: logistic regression on segment
features, its cross-validation by image, and its JSON file.

Entropy-maximization paper, sec. 4 and 7: a linear model ``g`` reads the
features of an OOD segment (:mod:`~mmseg_ood.meta.segments`) and
tells whether it is a true positive (``C_1``, it touches a ground-truth OOD
object) or a false positive (``C_2``) (eq. 9); segments it calls false
positives are removed from the OOD prediction. The model is scikit-learn's
``LogisticRegression`` behind a ``StandardScaler`` (the paper: "simple
logistic regression"; standardization makes its L2 penalty treat the
features alike). A segment is kept when ``g`` gives it a TP probability of
at least 0.5.

The file is plain JSON (never pickle): the scaler's statistics, the
coefficients, the feature names, the scorer and threshold, and the package
version. Loading rebuilds the same scikit-learn objects, so predictions
after a round trip are identical.
"""
from __future__ import annotations

import math
import os.path as osp
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, LeaveOneGroupOut
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..errors import (DamagedFileError, InvalidTypeError, InvalidValueError,
                      MissingInputError)
from ..utils.files import (check_schema_version, dump_json, expect_field,
                           load_json)
from ..version import __version__

__all__ = ['MetaClassifier', 'save_meta_classifiers',
           'load_meta_classifiers', 'group_splits',
           'cross_validated_tp_probability', 'resolve_cv', 'describe_cv',
           'FILE_FORMAT', 'META_CLASSIFIER_SCHEMA_VERSION']

#: The ``format`` field of a meta-classifier file.
FILE_FORMAT = 'mmseg_ood.meta_classifier'
#: ``schema_version`` of a meta-classifier file. Version 0 (no field) is a
#: file written before it was recorded: the same layout, with
#: ``format_version`` 1 (still written, for older readers).
META_CLASSIFIER_SCHEMA_VERSION = 1
_FORMAT_VERSION = 1
#: ``cv='auto'``: leave one image out up to this many images, else
#: :data:`AUTO_FOLDS`-fold grouped by image.
AUTO_LOO_MAX_IMAGES = 100
AUTO_FOLDS = 10


class MetaClassifier:
    """Logistic regression on standardized segment features (eq. 9).

    Args:
        feature_names: The features it reads, in order (a subset of
            :func:`~mmseg_ood.meta.segments.feature_names`).
        scorer: The OOD scorer whose map the segments come from.
        threshold: The segment threshold ``t`` (eq. 7), a finite number.
        C: Inverse L2 regularization strength of the logistic regression.
        max_iter: Iterations of its solver (lbfgs), >= 1.
        num_classes: The classes of the model whose segments it reads
            (checked by :meth:`check_num_classes`), or ``None``.
    """

    def __init__(self, feature_names: Sequence[str], scorer: str,
                 threshold: float, C: float = 1.0, max_iter: int = 1000,
                 num_classes: Optional[int] = None):
        names = list(feature_names)
        if not names or not all(isinstance(n, str) for n in names):
            raise InvalidValueError(
                '`feature_names` must be a non-empty list of '
                f'names, got {feature_names!r}')
        if len(set(names)) != len(names):
            raise InvalidValueError('`feature_names` has duplicates')
        if not isinstance(scorer, str):
            raise InvalidTypeError(f'`scorer` must be a name, got {scorer!r}')
        if not (_real(C) and C > 0 and math.isfinite(C)):
            raise InvalidValueError(
                f'`C` must be a finite number > 0, got {C!r}')
        if not (_real(threshold) and math.isfinite(threshold)):
            raise InvalidValueError('`threshold` must be a finite number, got '
                                    f'{threshold!r}')
        if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
            raise InvalidValueError(f'`max_iter` must be an int >= 1, got '
                                    f'{max_iter!r}')
        if num_classes is not None and not (
                isinstance(num_classes, (int, np.integer))
                and num_classes >= 2):
            raise InvalidValueError(
                '`num_classes` must be None or an int >= 2, got '
                f'{num_classes!r}')
        self.feature_names = names
        self.scorer = scorer
        self.threshold = float(threshold)
        self.C = float(C)
        self.max_iter = int(max_iter)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.pipeline: Optional[Pipeline] = None

    def _new_pipeline(self) -> Pipeline:
        return Pipeline([
            ('scaler', StandardScaler()),
            ('logistic', LogisticRegression(C=self.C,
                                            max_iter=self.max_iter))])

    def check_num_classes(self, num_classes: int,
                          where: str = 'meta classifier') -> None:
        """Refuse segments of a model with another number of classes (the
        class features ``N_j``, ``P_j`` would be read as other classes').
        """
        if self.num_classes is not None and num_classes != self.num_classes:
            raise InvalidValueError(
                f'{where}: the meta classifier was fitted on segments of a '
                f'model with {self.num_classes} classes; this one has '
                f'{num_classes}')

    # features ----------------------------------------------------------------
    def select(self, features: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """The columns of ``features`` (named ``names``) this classifier
        reads.

        Raises:
            ValueError: a feature it needs is not among ``names``.
        """
        names = list(names)
        missing = [n for n in self.feature_names if n not in names]
        if missing:
            raise InvalidValueError(
                f'the meta classifier ({self.scorer} >= {self.threshold:g}) '
                f'reads features {missing[:8]} that these segments do not '
                f'have (they have {len(names)} features: '
                f'{names[:4]} ... {names[-4:]}); was it fitted on a model '
                'with another number of classes?')
        if names == self.feature_names:
            return features
        return features[:, [names.index(n) for n in self.feature_names]]

    # fitting -----------------------------------------------------------------
    def fit(self, features: np.ndarray, is_tp: np.ndarray) -> 'MetaClassifier':
        """Fit on segments ``features`` ``(n, F)`` (columns as
        :attr:`feature_names`) labelled TP (1) / FP (0).

        Raises:
            ValueError: fewer than two segments of each kind.
        """
        x, y = _check_xy(features, is_tp, len(self.feature_names))
        counts = np.bincount(y, minlength=2)
        if counts.min() < 2:
            raise InvalidValueError(
                f'cannot fit a meta classifier at {self.scorer} >= '
                f'{self.threshold:g}: it needs at least 2 true-positive and 2 '
                f'false-positive segments, got {counts[1]} and {counts[0]}')
        self.pipeline = self._new_pipeline().fit(x, y)
        return self

    def tp_probability(self, features: np.ndarray) -> np.ndarray:
        """``g``: the probability that each segment is a true positive."""
        if self.pipeline is None:
            raise RuntimeError('the meta classifier is not fitted')
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise InvalidValueError(
                f'features must be (n, {len(self.feature_names)})'
                f', got {x.shape}')
        if x.shape[0] == 0:
            return np.zeros(0)
        return self.pipeline.predict_proba(x)[:, 1]

    def keep(self, features: np.ndarray) -> np.ndarray:
        """Which segments to keep (TP probability >= 0.5)."""
        return self.tp_probability(features) >= 0.5

    # JSON --------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The fitted model as plain numbers."""
        if self.pipeline is None:
            raise RuntimeError('the meta classifier is not fitted')
        scaler = self.pipeline.named_steps['scaler']
        logistic = self.pipeline.named_steps['logistic']
        return dict(
            threshold=self.threshold, C=self.C, max_iter=self.max_iter,
            scaler=dict(mean=scaler.mean_.tolist(),
                        scale=scaler.scale_.tolist(),
                        var=scaler.var_.tolist(),
                        n_samples_seen=int(scaler.n_samples_seen_)),
            logistic=dict(coef=logistic.coef_[0].tolist(),
                          intercept=float(logistic.intercept_[0]),
                          classes=logistic.classes_.tolist(),
                          n_iter=int(logistic.n_iter_[0])))

    @classmethod
    def from_dict(cls, d: dict, feature_names: Sequence[str], scorer: str,
                  num_classes: Optional[int] = None,
                  where: str = 'meta classifier') -> 'MetaClassifier':
        """Rebuild a fitted classifier from :meth:`to_dict`'s output.

        Every field is checked before use: ``threshold``, ``C`` (> 0),
        ``max_iter`` (an int >= 1), the scaler's ``mean`` / ``scale``
        (> 0) / ``var`` (>= 0) and the logistic regression's ``coef``
        (each a list of one finite number per feature), ``intercept``,
        ``classes`` (``[0, 1]``), ``n_samples_seen`` and ``n_iter``.

        Raises:
            DamagedFileError: a field missing, of the wrong type or shape,
                not finite, or out of range (named, after ``where``).
        """
        f = len(feature_names)
        threshold = _number(d, 'threshold', where)
        C = _number(d, 'C', where)
        if C <= 0:
            raise DamagedFileError(f'{where}.C must be > 0, got {C!r}')
        max_iter = expect_field(d, 'max_iter', int, where)
        if max_iter < 1:
            raise DamagedFileError(
                f'{where}.max_iter must be >= 1, got {max_iter!r}')
        s = expect_field(d, 'scaler', dict, where)
        g = expect_field(d, 'logistic', dict, where)
        mean = _vector(s, 'mean', f, where + '.scaler')
        scale = _vector(s, 'scale', f, where + '.scaler')
        var = _vector(s, 'var', f, where + '.scaler')
        if (scale <= 0).any():
            raise DamagedFileError(f'{where}.scaler.scale must be > 0')
        if (var < 0).any():
            raise DamagedFileError(f'{where}.scaler.var must be >= 0')
        n_seen = expect_field(s, 'n_samples_seen', int, where + '.scaler')
        coef = _vector(g, 'coef', f, where + '.logistic')
        intercept = _number(g, 'intercept', where + '.logistic')
        classes = expect_field(g, 'classes', list, where + '.logistic')
        if classes != [0, 1] or any(isinstance(c, bool) for c in classes):
            raise DamagedFileError(
                f'{where}.logistic.classes must be [0, 1], got '
                f'{_short(classes)}')
        n_iter = expect_field(g, 'n_iter', int, where + '.logistic')
        if n_seen < 1 or n_iter < 0:
            raise DamagedFileError(
                f'{where}: n_samples_seen must be >= 1 and n_iter >= 0, '
                f'got {n_seen} and {n_iter}')
        try:
            clf = cls(feature_names, scorer, threshold, C=C,
                      max_iter=max_iter, num_classes=num_classes)
        except (InvalidValueError, InvalidTypeError) as e:
            raise DamagedFileError(f'{where}: {e}') from None
        pipeline = clf._new_pipeline()
        scaler = pipeline.named_steps['scaler']
        scaler.mean_, scaler.scale_, scaler.var_ = mean, scale, var
        scaler.n_samples_seen_ = n_seen
        scaler.n_features_in_ = f
        logistic = pipeline.named_steps['logistic']
        logistic.coef_ = coef[None]
        logistic.intercept_ = np.array([intercept])
        logistic.classes_ = np.array([0, 1])
        logistic.n_iter_ = np.array([n_iter], np.int32)
        logistic.n_features_in_ = f
        clf.pipeline = pipeline
        return clf

    def __repr__(self) -> str:
        state = 'fitted' if self.pipeline is not None else 'not fitted'
        return (f'MetaClassifier({self.scorer} >= {self.threshold:g}, '
                f'{len(self.feature_names)} features, {state})')


def _real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and \
        not isinstance(v, bool)


def _check_xy(features, is_tp, num_features: int):
    x = np.asarray(features, np.float64)
    y = np.asarray(is_tp)
    if x.ndim != 2 or x.shape[1] != num_features:
        raise InvalidValueError(f'features must be (n, {num_features}), got '
                                f'{x.shape}')
    if y.shape != (x.shape[0], ):
        raise InvalidValueError(
            f'labels must be ({x.shape[0]},), got {y.shape}')
    if not np.isin(y, (0, 1)).all():
        raise InvalidValueError('labels must be 1 (TP) or 0 (FP)')
    if not np.isfinite(x).all():
        raise InvalidValueError('segment features contain NaN / Inf')
    return x, y.astype(np.int64)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _number(d: dict, key: str, where: str) -> float:
    """``d[key]``, a finite number, for the file reader."""
    if not isinstance(d, dict):
        raise DamagedFileError(f'{where} must be an object, got '
                               f'{type(d).__name__}')
    if key not in d:
        raise DamagedFileError(f'{where}: missing field {key!r}')
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or \
            not math.isfinite(v):
        raise DamagedFileError(
            f'{where}.{key} must be a finite number, got {_short(v)}')
    return float(v)


def _vector(d: dict, key: str, length: int, where: str) -> np.ndarray:
    """``d[key]``, a list of ``length`` finite numbers, for the file
    reader."""
    if key not in d:
        raise DamagedFileError(f'{where}: missing field {key!r}')
    v = d[key]
    if not isinstance(v, list) or len(v) != length or not all(
            isinstance(a, (int, float)) and not isinstance(a, bool)
            for a in v):
        shape = (f'a list of {len(v)} entries' if isinstance(v, list) else
                 type(v).__name__)
        raise DamagedFileError(
            f'{where}.{key} must be a list of {length} numbers '
            f'(one per feature), got {shape}')
    out = np.asarray(v, np.float64)
    if not np.isfinite(out).all():
        raise DamagedFileError(f'{where}.{key} has NaN / Inf')
    return out


# file ------------------------------------------------------------------------
def save_meta_classifiers(path: str, classifiers: Sequence[MetaClassifier],
                          *, inputs: Sequence[Optional[str]] = (),
                          **info) -> None:
    """Write fitted classifiers (one per threshold, same scorer and
    features) to a JSON file, atomically; ``info`` (e.g. the datasets they
    were fitted on) is stored alongside.

    The file carries ``schema_version``
    (:data:`META_CLASSIFIER_SCHEMA_VERSION`) and, for older readers,
    ``format_version`` 1.

    Args:
        path: The JSON file.
        classifiers: Fitted, sharing the scorer, the features and the
            number of classes.
        inputs: Files of the run (config, checkpoint) that ``path`` must
            not be.

    Raises:
        InvalidValueError: no classifier, classifiers that do not share
            their scorer / features / classes, or unknown classes.
        OutputPathError: ``path`` is one of ``inputs``, a folder, or in a
            folder that does not exist.
    """
    if not classifiers:
        raise InvalidValueError('no meta classifier to save')
    first = classifiers[0]
    for c in classifiers[1:]:
        if (c.scorer, c.feature_names, c.num_classes) != (
                first.scorer, first.feature_names, first.num_classes):
            raise InvalidValueError(
                'meta classifiers saved together must share '
                'the scorer, the features and the classes')
    if first.num_classes is None:
        raise InvalidValueError('the number of classes of the model the meta '
                                'classifier was fitted for (`num_classes`) is '
                                'unknown; set it before saving')
    info = {k: v for k, v in info.items() if k != 'schema_version'}
    payload = dict(schema_version=META_CLASSIFIER_SCHEMA_VERSION,
                   format=FILE_FORMAT, format_version=_FORMAT_VERSION,
                   package_version=__version__, scorer=first.scorer,
                   num_classes=first.num_classes,
                   features=first.feature_names,
                   classifiers=[c.to_dict() for c in classifiers], **info)
    dump_json(payload, path, inputs, 'meta-classifier file')


def load_meta_classifiers(path: str,
                          scorer: Optional[str] = None,
                          feature_names: Optional[Sequence[str]] = None,
                          num_classes: Optional[int] = None
                          ) -> List[MetaClassifier]:
    """Read the classifiers of a file written by
    :func:`save_meta_classifiers`.

    Args:
        path: The JSON file.
        scorer: If given, the scorer the classifiers must have been fitted
            for.
        feature_names: If given, the features available (the classifiers'
            must be among them).
        num_classes: If given, the classes of the model the classifiers
            will read segments of.

    Accepted: schema versions 0 (no ``schema_version``) to
    :data:`META_CLASSIFIER_SCHEMA_VERSION`.

    Raises:
        MissingInputError: no such file (a ``FileNotFoundError``).
        DamagedFileError: not JSON (truncated, not UTF-8, nested too
            deeply), not a meta-classifier file, a newer schema, or a field
            missing, of the wrong type or shape, or not finite (the
            feature names, the coefficients: each message names the file
            and the field).
        InvalidValueError: a valid file that does not fit: another scorer,
            features or number of classes than the model's.
    """
    what = 'meta-classifier file'
    if not osp.lexists(path):  # the message ood_test's options give too
        raise MissingInputError(f'meta classifier: no file {path!r}')
    d = load_json(path, what)
    if not isinstance(d, dict) or d.get('format') != FILE_FORMAT:
        raise DamagedFileError(
            f'{what} {path}: not a meta-classifier file (its "format" '
            f'field must be {FILE_FORMAT!r}); write one with '
            'tools/meta_classify.py --save')
    check_schema_version(d, path, what, META_CLASSIFIER_SCHEMA_VERSION)
    where = f'{what} {path}'
    version = d.get('format_version', _FORMAT_VERSION)
    if version != _FORMAT_VERSION or isinstance(version, bool):
        raise DamagedFileError(
            f'{where}: format_version {_short(version)} is not '
            f'{_FORMAT_VERSION} (written by mmseg_ood '
            f'{_short(d.get("package_version"))}, this is {__version__})')
    names = expect_field(d, 'features', list, where)
    if not names or not all(isinstance(n, str) for n in names) or \
            len(set(names)) != len(names):
        raise DamagedFileError(
            f'{where}: the field \'features\' must be a non-empty list of '
            f'distinct feature names, got {_short(names)}')
    clf_scorer = expect_field(d, 'scorer', str, where)
    q = expect_field(d, 'num_classes', int, where)
    if q < 2:
        raise DamagedFileError(f'{where}: the field \'num_classes\' must be '
                               f'an int >= 2, got {q!r}')
    entries = expect_field(d, 'classifiers', list, where)
    if not entries:
        raise DamagedFileError(
            f'{where}: the field \'classifiers\' must be a non-empty list')
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise DamagedFileError(
                f'{where}: classifiers[{i}] must be an object, got '
                f'{type(e).__name__}')
        out.append(MetaClassifier.from_dict(e, names, clf_scorer, q,
                                            f'{where}: classifiers[{i}]'))
    if scorer is not None and clf_scorer != scorer:
        raise InvalidValueError(f'{path}: the meta classifier was fitted on '
                                f'{clf_scorer!r} segments, not {scorer!r}')
    if feature_names is not None:
        missing = [n for n in names if n not in feature_names]
        if missing:
            raise InvalidValueError(
                f'{path}: the meta classifier reads features {missing[:8]} '
                f'that this model\'s segments do not have ({len(names)} '
                f'features in the file, {len(feature_names)} here); was it '
                'fitted on a model with another number of classes?')
    if num_classes is not None:
        out[0].check_num_classes(num_classes, path)
    thresholds = [c.threshold for c in out]
    if len(set(thresholds)) != len(thresholds):
        raise DamagedFileError(f'{path}: two classifiers share a threshold '
                               f'({thresholds})')
    return out


# cross-validation ------------------------------------------------------------
CV = Union[str, int]


def resolve_cv(cv: CV, num_groups: int) -> Tuple[str, int]:
    """``('loo', n)`` or ``('kfold', k)`` for ``cv`` (``'loo'``, ``'auto'``
    or a number of folds >= 2) and ``num_groups`` images (``k`` at most
    ``num_groups``: more folds than images cannot be made).

    Args:
        cv: ``'loo'`` (leave one image out), ``'auto'`` (leave one out up
            to :data:`AUTO_LOO_MAX_IMAGES` images, else
            :data:`AUTO_FOLDS` folds) or a number of folds >= 2.
        num_groups: The number of images the segments come from.

    Returns:
        tuple: ``(kind, k)``: ``'loo'`` and the number of images, or
        ``'kfold'`` and the number of folds.

    Raises:
        ValueError: any other ``cv``.
    """
    if cv == 'auto':
        return (('loo', num_groups) if num_groups <= AUTO_LOO_MAX_IMAGES
                else ('kfold', AUTO_FOLDS))
    if cv == 'loo':
        return 'loo', num_groups
    if isinstance(cv, (int, np.integer)) and not isinstance(cv, bool) \
            and cv >= 2:
        return 'kfold', min(int(cv), num_groups)
    raise InvalidValueError(
        f"`cv` must be 'loo', 'auto' or a number of folds >= 2, "
        f'got {cv!r}')


def describe_cv(cv: CV, num_groups: int) -> str:
    """What :func:`group_splits` does for ``cv`` and ``num_groups`` images,
    in words.

    Args:
        cv: As in :func:`resolve_cv`.
        num_groups: The number of images.

    Returns:
        str: E.g. ``'leave one image out (40 images)'`` or
        ``'10-fold grouped by image (500 images)'``.
    """
    kind, k = resolve_cv(cv, num_groups)
    return (f'leave one image out ({k} images)' if kind == 'loo' else
            f'{k}-fold grouped by image ({num_groups} images)')


def group_splits(groups: np.ndarray, cv: CV = 'auto'
                 ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """(train, test) index arrays; the segments of an image (``groups``:
    one image id per segment) are never split between the two.

    Args:
        groups: ``(n,)`` image id of each segment (any hashable dtype).
        cv: As in :func:`resolve_cv`; the default ``'auto'`` leaves one
            image out for up to 100 images.

    Returns:
        Iterator: ``(train, test)`` pairs of int index arrays into the
        ``n`` segments, from scikit-learn's ``LeaveOneGroupOut`` or
        ``GroupKFold``.

    Raises:
        ValueError: segments of fewer than 2 images, or a bad ``cv``.
    """
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise InvalidValueError(
            'cross-validation needs segments from at least 2 '
            f'images, got {n_groups}')
    kind, k = resolve_cv(cv, n_groups)
    splitter = LeaveOneGroupOut() if kind == 'loo' else GroupKFold(
        n_splits=k)
    x = np.zeros((len(groups), 1))
    return splitter.split(x, groups=groups)


def cross_validated_tp_probability(classifier: MetaClassifier,
                                   features: np.ndarray, is_tp: np.ndarray,
                                   groups: np.ndarray,
                                   cv: CV = 'auto') -> np.ndarray:
    """Out-of-image TP probabilities of every segment (sec. 7: "leave-one-
    out cross validated"; here the held-out unit is an image, so that no
    segment is judged by a model that saw its own image).

    A fold whose training segments are all of one kind predicts that kind
    (probability 1 or 0): a logistic regression cannot be fitted on one
    class.

    Args:
        classifier: Gives the parameters (``C``, ``max_iter``, features);
            it is not changed.
        features / is_tp: ``(n, F)`` features and 1 / 0 labels.
        groups: ``(n,)`` image id of each segment.
        cv: ``'loo'`` (leave one image out), a number of folds (grouped
            k-fold), or ``'auto'`` (leave one out up to 100 images, else 10
            folds).
    """
    x, y = _check_xy(features, is_tp, len(classifier.feature_names))
    out = np.full(len(y), np.nan)
    for train, test in group_splits(groups, cv):
        labels = np.unique(y[train])
        if labels.size == 1:
            out[test] = float(labels[0])
            continue
        fold = MetaClassifier(classifier.feature_names, classifier.scorer,
                              classifier.threshold, classifier.C,
                              classifier.max_iter, classifier.num_classes)
        fold.pipeline = fold._new_pipeline().fit(x[train], y[train])
        out[test] = fold.tp_probability(x[test])
    return out
