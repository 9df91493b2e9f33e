"""The meta classifier: its JSON file, and cross-validation by image."""
import json
import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmseg_ood.errors import (DamagedFileError, MissingInputError,
                              OutputPathError)
from mmseg_ood.meta.classifier import (META_CLASSIFIER_SCHEMA_VERSION,
                                       MetaClassifier,
                                       cross_validated_tp_probability,
                                       describe_cv, group_splits,
                                       load_meta_classifiers, resolve_cv,
                                       save_meta_classifiers)

NAMES = ['E_mean', 'V_mean', 'S']


def _data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    groups = np.repeat(np.arange(n // 6), 6)
    return x, y, groups


def _fitted(threshold=0.5):
    x, y, _ = _data()
    return MetaClassifier(NAMES, 'entropy', threshold,
                          num_classes=3).fit(x, y)


def test_json_round_trip_gives_identical_predictions(tmp_path):
    clfs = [_fitted(0.3), _fitted(0.5)]
    path = str(tmp_path / 'meta.json')
    save_meta_classifiers(path, clfs, datasets=['a'])
    text = open(path).read()
    assert 'pickle' not in text and json.loads(text)['scorer'] == 'entropy'
    loaded = load_meta_classifiers(path, 'entropy', NAMES + ['C_h'])
    x = np.random.default_rng(5).normal(size=(50, 3)) * 10
    for a, b in zip(clfs, loaded):
        assert b.threshold == a.threshold
        np.testing.assert_array_equal(b.tp_probability(x),
                                      a.tp_probability(x))


def test_the_classifier_is_sklearns_standardized_logistic_regression():
    x, y, _ = _data()
    ref = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    ref.fit(x, y)
    np.testing.assert_allclose(_fitted().tp_probability(x),
                               ref.predict_proba(x)[:, 1], rtol=1e-12)


def _write(tmp_path, mutate):
    path = str(tmp_path / 'meta.json')
    save_meta_classifiers(path, [_fitted()])
    d = json.load(open(path))
    mutate(d)
    with open(path, 'w') as f:
        json.dump(d, f)
    return path


@pytest.mark.parametrize('mutate, message', [
    (lambda d: d.update(format='something'), 'not a meta-classifier file'),
    (lambda d: d.update(format_version=99), 'format_version 99'),
    (lambda d: d['classifiers'][0]['logistic'].update(coef=[1.0]),
     r'logistic.coef must be a list of 3 numbers'),
    (lambda d: d['classifiers'][0]['scaler'].pop('mean'),
     "missing field 'mean'"),
    (lambda d: d['classifiers'][0]['scaler'].update(mean=[0, 'x', 1]),
     'scaler.mean must be a list of 3 numbers'),
    (lambda d: d['classifiers'][0].update(threshold=None),
     'threshold must be a finite number'),
    (lambda d: d['classifiers'][0]['logistic'].update(classes=[0, 2]),
     r'classes must be \[0, 1\]'),
    (lambda d: d.update(classifiers=[]), 'non-empty list'),
    (lambda d: d.pop('num_classes'), "the field 'num_classes' is missing"),
    (lambda d: d.update(num_classes=1), "'num_classes' must be an int >= 2"),
    (lambda d: d.update(num_classes='19'), "'num_classes' must be an int"),
    # the edges of issue 29: wrong nested types, shapes, a newer schema
    (lambda d: d.update(schema_version=99), 'schema version 99, newer'),
    (lambda d: d.update(features='E_mean'), "'features' must be a list"),
    (lambda d: d.update(features=['E_mean', 3, 'S']),
     "'features' must be a non-empty list of distinct feature names"),
    (lambda d: d.update(features=['S', 'S', 'V_mean']),
     'distinct feature names'),
    (lambda d: d.update(classifiers={'0.5': {}}),
     "'classifiers' must be a list"),
    (lambda d: d.update(classifiers=[[1, 2]]),
     r'classifiers\[0\] must be an object, got list'),
    (lambda d: d['classifiers'][0].update(scaler=[0, 1]),
     "the field 'scaler' must be an object"),
    (lambda d: d['classifiers'][0]['logistic'].update(
        coef=[[1.0, 2.0, 3.0]]),
     'logistic.coef must be a list of 3 numbers .one per feature., got a '
     'list of 1 entries'),
    (lambda d: d['classifiers'][0]['logistic'].update(coef={'a': 1}),
     'logistic.coef must be a list of 3 numbers .one per feature., got '
     'dict'),
    (lambda d: d['classifiers'][0]['scaler'].update(scale=[1, 0, 1]),
     'scaler.scale must be > 0'),
    (lambda d: d['classifiers'][0].update(C=-1), r'\.C must be > 0'),
    (lambda d: d['classifiers'][0].update(max_iter=1.5),
     "the field 'max_iter' must be an int"),
    (lambda d: d['classifiers'][0]['logistic'].update(n_iter='7'),
     "the field 'n_iter' must be an int"),
    (lambda d: d['classifiers'][0]['logistic'].update(intercept=True),
     'intercept must be a finite number, got True'),
    (lambda d: d['classifiers'][0]['logistic'].update(classes=[False, True]),
     r'classes must be \[0, 1\]'),
    (lambda d: d['classifiers'].append(d['classifiers'][0]),
     'two classifiers share a threshold'),
])
def test_malformed_files_are_refused_naming_the_field(tmp_path, mutate,
                                                      message):
    path = _write(tmp_path, mutate)
    with pytest.raises(DamagedFileError, match=message) as e:
        load_meta_classifiers(path)
    assert path in str(e.value)


def test_the_file_carries_a_schema_version_and_old_files_read(tmp_path):
    path = _write(tmp_path, lambda d: None)
    data = json.load(open(path))
    assert data['schema_version'] == META_CLASSIFIER_SCHEMA_VERSION
    assert data['format_version'] == 1  # for older readers
    del data['schema_version']  # a file written before it was recorded
    open(path, 'w').write(json.dumps(data))
    assert load_meta_classifiers(path)[0].threshold == 0.5


@pytest.mark.parametrize('text, message', [
    ('{"format": "mmseg_ood.meta_classifier", "features": ["E_m',
     'not valid JSON'),
    ('', 'not valid JSON'),
    ('[1, 2]', 'not a meta-classifier file'),
    ('{"a": ' * 100000 + '1' + '}' * 100000, 'nested too deeply'),
])
def test_truncated_foreign_and_deep_files_are_named(tmp_path, text,
                                                    message):
    path = tmp_path / 'meta.json'
    path.write_text(text)
    with pytest.raises(DamagedFileError, match=message) as e:
        load_meta_classifiers(str(path))
    assert str(path) in str(e.value)


def test_saving_is_atomic_and_never_over_an_input(tmp_path):
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'weights')
    with pytest.raises(OutputPathError, match='is the input'):
        save_meta_classifiers(str(ckpt), [_fitted()], inputs=[str(ckpt)])
    assert ckpt.read_bytes() == b'weights'
    link = tmp_path / 'link.json'
    link.symlink_to(ckpt)
    with pytest.raises(OutputPathError, match='is the input'):
        save_meta_classifiers(str(link), [_fitted()], inputs=[str(ckpt)])
    with pytest.raises(OutputPathError, match='does not exist'):
        save_meta_classifiers(str(tmp_path / 'no' / 'm.json'), [_fitted()])
    assert ckpt.read_bytes() == b'weights'
    assert not [f for f in os.listdir(tmp_path) if '.tmp' in f]


def test_nan_in_the_file_is_refused(tmp_path):
    path = _write(tmp_path, lambda d: None)
    text = open(path).read().replace('"intercept": ', '"intercept": NaN, '
                                     '"was": ', 1)
    open(path, 'w').write(text)
    with pytest.raises(ValueError, match='intercept must be a finite'):
        load_meta_classifiers(path)


def test_mismatched_scorer_or_features_are_refused(tmp_path):
    path = _write(tmp_path, lambda d: None)
    with pytest.raises(ValueError, match="fitted on 'entropy' segments, not "
                       "'energy'"):
        load_meta_classifiers(path, scorer='energy')
    with pytest.raises(ValueError, match=r"reads features \['S'\]"):
        load_meta_classifiers(path, feature_names=['E_mean', 'V_mean'])
    # a model with more classes has every feature name of one with fewer:
    # the number of classes is checked by itself
    with pytest.raises(ValueError, match='fitted on segments of a model '
                       'with 3 classes; this one has 4'):
        load_meta_classifiers(path, num_classes=4)
    clf = load_meta_classifiers(path)[0]
    with pytest.raises(ValueError, match='with 3 classes; this one has 19'):
        clf.check_num_classes(19)
    with pytest.raises(ValueError, match='another number of classes'):
        clf.select(np.zeros((2, 2)), ['E_mean', 'V_mean'])
    # columns are picked by name, whatever their order
    x = np.arange(8.).reshape(2, 4)
    np.testing.assert_array_equal(
        clf.select(x, ['S', 'C_h', 'V_mean', 'E_mean']), x[:, [3, 2, 0]])


def test_files_that_are_not_json_are_refused(tmp_path):
    path = tmp_path / 'meta.json'
    path.write_bytes(b'\x80\x04\x95pickle')
    with pytest.raises(DamagedFileError, match='not UTF-8'):
        load_meta_classifiers(str(path))
    with pytest.raises(MissingInputError, match='no file'):
        load_meta_classifiers(str(tmp_path / 'missing.json'))
    with pytest.raises(DamagedFileError, match='is a folder'):
        load_meta_classifiers(str(tmp_path))


@pytest.mark.parametrize('kwargs, message', [
    (dict(threshold=float('nan')), '`threshold` must be a finite number'),
    (dict(threshold=float('inf')), '`threshold` must be a finite number'),
    (dict(threshold='0.5'), '`threshold` must be a finite number'),
    (dict(max_iter=0), '`max_iter` must be an int >= 1'),
    (dict(C=0), '`C` must be a finite number > 0'),
    (dict(num_classes=1), '`num_classes` must be None or an int >= 2'),
])
def test_bad_parameters_are_refused(kwargs, message):
    args = dict(feature_names=NAMES, scorer='entropy', threshold=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        MetaClassifier(**args)


def test_saving_needs_the_number_of_classes(tmp_path):
    x, y, _ = _data()
    clf = MetaClassifier(NAMES, 'entropy', 0.5).fit(x, y)
    with pytest.raises(ValueError, match='`num_classes`'):
        save_meta_classifiers(str(tmp_path / 'm.json'), [clf])


def test_fitting_needs_both_kinds():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match='2 true-positive and 2 false-'
                       'positive segments, got 5 and 0'):
        MetaClassifier(NAMES, 'entropy', 0.5).fit(x, np.ones(5))
    with pytest.raises(ValueError, match='NaN'):
        MetaClassifier(NAMES, 'entropy', 0.5).fit(
            np.full((4, 3), np.nan), [0, 1, 0, 1])


@pytest.mark.parametrize('cv', ['loo', 3, 'auto'])
def test_no_fold_tests_an_image_it_trained_on(cv):
    _, _, groups = _data()
    seen = np.zeros(len(groups), int)
    for train, test in group_splits(groups, cv):
        assert not set(groups[train]) & set(groups[test])
        seen[test] += 1
    assert (seen == 1).all()  # every segment predicted exactly once


def test_cv_kinds():
    assert resolve_cv('auto', 100) == ('loo', 100)
    assert resolve_cv('auto', 101) == ('kfold', 10)
    assert resolve_cv(5, 1000) == ('kfold', 5)
    assert resolve_cv(100, 7) == ('kfold', 7)   # no more folds than images
    assert describe_cv(100, 7) == '7-fold grouped by image (7 images)'
    assert describe_cv('auto', 7) == 'leave one image out (7 images)'
    assert len(list(group_splits(np.repeat(np.arange(7), 2), 'loo'))) == 7
    for bad in (1, 'kfold', 2.5, True):
        with pytest.raises(ValueError, match="'loo', 'auto' or a number"):
            resolve_cv(bad, 10)
    with pytest.raises(ValueError, match='at least 2 images'):
        list(group_splits(np.zeros(4), 'loo'))


def test_leave_one_image_out_equals_refitting_without_each_image():
    x, y, groups = _data(60)
    clf = MetaClassifier(NAMES, 'entropy', 0.5)
    got = cross_validated_tp_probability(clf, x, y, groups, 'loo')
    for g in np.unique(groups):
        held = groups == g
        ref = make_pipeline(StandardScaler(),
                            LogisticRegression(max_iter=1000))
        ref.fit(x[~held], y[~held])
        np.testing.assert_allclose(got[held],
                                   ref.predict_proba(x[held])[:, 1],
                                   rtol=1e-12)


def test_an_image_cannot_leak_into_its_own_prediction():
    """Each image's segments share a label and a fingerprint feature: a
    model that saw the image predicts it perfectly, one that did not can
    only guess."""
    rng = np.random.default_rng(0)
    n_img, per = 40, 5
    groups = np.repeat(np.arange(n_img), per)
    label = rng.integers(0, 2, n_img)[groups]
    finger = np.eye(n_img)[groups] + 0.01 * rng.normal(size=(len(groups),
                                                             n_img))
    names = [f'f{i}' for i in range(n_img)]
    clf = MetaClassifier(names, 'entropy', 0.5, C=100.0)
    ours = cross_validated_tp_probability(clf, finger, label, groups, 4)
    leaky = cross_val_predict(
        make_pipeline(StandardScaler(), LogisticRegression(C=100.0,
                                                           max_iter=1000)),
        finger, label, cv=KFold(4, shuffle=True, random_state=0),
        method='predict_proba')[:, 1]
    assert roc_auc_score(label, leaky) > 0.95
    assert roc_auc_score(label, ours) < 0.75


def test_a_fold_with_one_kind_predicts_that_kind():
    x = np.arange(12, dtype=float).reshape(6, 2)
    y = np.array([1, 1, 1, 1, 0, 0])
    groups = np.array([0, 0, 1, 1, 2, 2])
    p = cross_validated_tp_probability(
        MetaClassifier(['a', 'b'], 'entropy', 0.5), x, y, groups, 'loo')
    # image 2 holds every FP: its fold trained on TPs only
    np.testing.assert_array_equal(p[4:], [1.0, 1.0])
    assert np.isfinite(p).all()
