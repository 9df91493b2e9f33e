"""``OODTestOptions``: what ``ood_test`` is asked to do, given as one object
or as keywords, and built by ``tools/ood_test.py`` from its flags.

The calls here stop before a model is built: ``ood_test``'s session and
passes are replaced by ones that record what they were given."""
import dataclasses
import importlib
import re

import pytest

import mmseg_ood.apis
from conftest import STREET_CONFIG
from mmseg_ood.apis import OODTestOptions, ood_test
from mmseg_ood.engine.tuning import TUNE_GRID

FIELDS = [f.name for f in dataclasses.fields(OODTestOptions)]

#: Every option away from its default (those that name files aside).
NON_DEFAULT = dict(
    datasets=['synthetic_ood', 'synthetic_objects_ood'],
    scorers=['msp', 'energy', 'n_energy'], tune=['eta'],
    tune_on='synthetic_objects_ood', show_dir='heat', show_num=2,
    export_smiyc='smiyc', export_transform='none',
    component_threshold='tpr:0.9', per_image=True,
    bootstrap=dict(samples=10), tta=True, id_eval=False, sml_fit_on='val')


@pytest.fixture
def calls(monkeypatch):
    """``ood_test`` without its session and passes: each call returns (and
    records) the options, the session's arguments and ``id_eval``."""
    module = importlib.import_module('mmseg_ood.apis.ood_test')
    seen = []

    class Session:

        def __init__(self, *args, **kwargs):
            self.args = (args, kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def run(session, plan, id_eval):
        seen.append(dict(options=plan.options, session=session.args,
                         id_eval=id_eval))
        return seen[-1]

    monkeypatch.setattr(module, 'EvaluationSession', Session)
    monkeypatch.setattr(module, '_check_files',
                        lambda session, plan: plan.options.id_eval)
    monkeypatch.setattr(module, '_run', run)
    return seen


def test_options_and_keywords_make_the_same_call(calls, tmp_path):
    work = str(tmp_path / 'work')
    run = dict(cfg_options={'model.test_cfg.mode': 'whole'},
               unsafe_load=True)
    by_options = ood_test(STREET_CONFIG, 'model.pth',
                          OODTestOptions(**NON_DEFAULT), work_dir=work, **run)
    by_keywords = ood_test(STREET_CONFIG, 'model.pth', work_dir=work,
                           **run, **NON_DEFAULT)
    # the third argument was the work dir before the options: still is
    work_dir_third = ood_test(STREET_CONFIG, 'model.pth', work, **run,
                              **NON_DEFAULT)
    assert by_options == by_keywords == work_dir_third
    options = by_options['options']
    assert isinstance(options, OODTestOptions)
    for name, value in NON_DEFAULT.items():
        assert getattr(options, name) == value, name
    assert by_options['session'] == (
        (STREET_CONFIG, 'model.pth', work, run['cfg_options'], 'none', True,
         True), dict(tool='ood_test'))
    assert by_options['id_eval'] is False
    # nothing given: the defaults
    assert ood_test(STREET_CONFIG, 'model.pth')['options'] == \
        OODTestOptions()
    assert calls[-1]['session'][0][2] is None  # work_dir: mmseg's default


def test_a_keyword_overrides_the_options(calls):
    options = OODTestOptions(scorers=['msp'], per_image=True,
                             export_transform='raw')
    got = ood_test(STREET_CONFIG, 'model.pth', options, per_image=False,
                   export_transform='none')['options']
    assert got == dataclasses.replace(options, per_image=False,
                                      export_transform='none')
    assert got.scorers == ['msp'] and got.per_image is False
    assert options.per_image is True  # the caller's object is untouched
    # what is checked is the result: the bad value was overridden above,
    # and is refused where it is not
    with pytest.raises(ValueError, match='`export_transform` must be one'):
        ood_test(STREET_CONFIG, 'model.pth', options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.per_image = False


def test_an_unknown_keyword_is_a_type_error_naming_it(tmp_path):
    work = tmp_path / 'work'
    with pytest.raises(TypeError) as info:
        ood_test(STREET_CONFIG, 'no.pth', work_dir=str(work),
                 scorer=['msp'])
    message = str(info.value)
    assert message.startswith("ood_test: unknown argument 'scorer' (did "
                              "you mean 'scorers'")
    accepted = message.split('accepted: ')[1].split(', ')
    assert set(accepted) == set(FIELDS) | {'options', 'work_dir',
                                           'cfg_options', 'launcher',
                                           'unsafe_load'}
    with pytest.raises(TypeError, match=r"unknown arguments 'tune_in' "
                       r"\(did you mean 'tune_on'.*\), 'bogus'; accepted"):
        ood_test(STREET_CONFIG, 'no.pth', OODTestOptions(), tune_in='x',
                 bogus=1)
    with pytest.raises(TypeError, match='`options` must be an '
                       'OODTestOptions, got dict'):
        ood_test(STREET_CONFIG, 'no.pth', dict(scorers=['msp']))
    with pytest.raises(TypeError, match='got the work dir twice'):
        ood_test(STREET_CONFIG, 'no.pth', str(work), work_dir=str(work))
    assert not work.exists()


# name -> (options, error type, the message as before OODTestOptions;
# a message ending in '...' is a prefix), and whether validate() refuses
# it (the others need the files the options name: ood_test refuses them)
BAD = {
    'export_transform': (
        dict(export_transform='raw'), ValueError,
        "`export_transform` must be one of ('rank', 'none'), got 'raw'",
        True),
    'per_image': (dict(per_image='yes'), TypeError,
                  "`per_image` must be a bool, got 'yes'", True),
    'sml_fit_on': (dict(sml_fit_on='test'), ValueError,
                   "`sml_fit_on` must be one of ('train', 'val'), got "
                   "'test'", True),
    'fit_on': (dict(fit_on='test'), ValueError,
               "`fit_on` must be one of ('train', 'val'), got 'test'", True),
    'fit_on_disagrees': (dict(fit_on='train', sml_fit_on='val'), ValueError,
                         "`fit_on` ('train') and its older name "
                         "`sml_fit_on` ('val') disagree: give one", True),
    'scorers_text': (dict(scorers='msp'), ValueError,
                     '`scorers` must be a non-empty list of scorer names, '
                     "got 'msp'", True),
    'scorers_empty': (dict(scorers=[]), ValueError,
                      '`scorers` must be a non-empty list of scorer names, '
                      'got []', True),
    'scorers_twice': (dict(scorers=['msp', 'energy', 'msp']), ValueError,
                      "`scorers` names ['msp'] more than once", True),
    'scorers_unknown': (dict(scorers=['msp', 'mps']), ValueError,
                        "unknown scorer 'mps'; registered scorers: ...",
                        True),
    'tune_on_alone': (dict(tune_on='synthetic_ood'), ValueError,
                      "`tune_on` ('synthetic_ood') is given but nothing to "
                      'tune: add `tune` (--tune eta delta temperature)',
                      True),
    'tune_twice': (dict(tune=['eta', 'eta']), ValueError,
                   "`tune` names ['eta'] more than once", True),
    'tune_unknown': (dict(tune=['eta2']), ValueError,
                     "`tune` takes ['delta', 'eta', 'temperature'], got "
                     "['eta2']", True),
    'tune_nothing': (dict(scorers=['msp'], tune=['eta']), ValueError,
                     "`tune` ['eta'] has nothing to tune among the scorers "
                     "['msp']: it tunes ['n_energy', 'n_max_logit']", True),
    'open_set_type': (dict(open_set_iou=1), TypeError,
                      '`open_set_iou` must be a bool, got 1', True),
    'open_set_no_id': (dict(open_set_iou=True, id_eval=False), ValueError,
                       '`open_set_iou` is computed in the ID pass, which '
                       '`id_eval=False` (--no-id-eval) skips', True),
    'threshold_text': (dict(component_threshold='nope'), ValueError,
                       "`component_threshold` must be 'best-f1', 'smiyc', a "
                       "number, 'from:<dataset>' or 'tpr:<rate>' (rate in "
                       "(0, 1]), got 'nope'", True),
    'threshold_from': (dict(component_threshold='from:'), ValueError,
                       "`component_threshold` 'from:' needs a dataset, "
                       "e.g. 'from:road_anomaly21'", True),
    'threshold_tpr': (dict(component_threshold='tpr:2'), ValueError,
                      "`component_threshold` 'tpr:<rate>' needs a rate in "
                      "(0, 1], got 'tpr:2'", True),
    'threshold_inf': (dict(component_threshold=float('inf')), ValueError,
                      '`component_threshold` must be finite, got inf',
                      True),
    'sml_stats_no_sml': (dict(scorers=['msp'], sml_stats='stats.json'),
                         ValueError, '`sml_stats` is given but `sml` is '
                         "not among the scorers ['msp']", True),
    'sml_stats_missing': (dict(scorers=['msp', 'sml'],
                               sml_stats='/nowhere/stats.json'),
                          FileNotFoundError,
                          "`sml_stats`: no file '/nowhere/stats.json'", True),
    'meta_tta': (dict(meta_classifier='meta.json', tta=True), ValueError,
                 '`meta_classifier` with `tta`: meta classifiers are fitted '
                 'on the features of single-scale predictions '
                 '(tools/meta_classify.py has no TTA), so they are not '
                 'applied to test-time-augmented ones', True),
    'bootstrap_type': (dict(bootstrap=5), TypeError,
                       '`bootstrap` must be a dict(samples=N, seed=S, '
                       'level=L, bins=B) or None, got 5', True),
    'bootstrap_key': (dict(bootstrap=dict(samples=10, sede=1)), ValueError,
                      "`bootstrap` has unknown keys ['sede']; it takes "
                      'samples, seed, level, bins', True),
    'bootstrap_samples': (dict(bootstrap=dict(samples=0)), ValueError,
                          '`bootstrap` samples must be an int >= 1, got 0',
                          True),
    'dataset_missing': (dict(datasets=['no_such_preset']), ValueError,
                        "unknown dataset 'no_such_preset': not a preset ...",
                        False),
    'tune_on_whole_image': (
        dict(tune=['eta'], tune_on='synthetic_objects_image_ood_gwn'),
        ValueError, "`tune_on` 'synthetic_objects_image_ood_gwn' is a "
        'whole-image OOD set (no OOD label maps): it has a background IoU, '
        'not pixel OOD metrics', False),
    'threshold_from_whole_image': (
        dict(component_threshold='from:synthetic_objects_image_ood_gwn'),
        ValueError, "`component_threshold from:` "
        "'synthetic_objects_image_ood_gwn' is a whole-image OOD set (no OOD "
        'label maps): it has a background IoU, not pixel OOD metrics',
        False),
    'meta_missing': (dict(meta_classifier='/nowhere/meta.json'),
                     FileNotFoundError,
                     "meta classifier: no file '/nowhere/meta.json'", False),
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_a_bad_value_is_refused_with_the_same_message(case, tmp_path):
    """As an object or as keywords, through ood_test or validate(): the
    same error, the message of before the options object, and nothing
    written."""
    kw, error, message, by_validate = BAD[case]
    pattern = '^' + (re.escape(message[:-3]) if message.endswith('...')
                     else re.escape(message) + '$')
    work = tmp_path / 'work'
    with pytest.raises(error, match=pattern):
        ood_test(STREET_CONFIG, 'no.pth', work_dir=str(work), **kw)
    with pytest.raises(error, match=pattern):
        ood_test(STREET_CONFIG, 'no.pth', OODTestOptions(**kw),
                 work_dir=str(work))
    if by_validate:
        with pytest.raises(error, match=pattern):
            OODTestOptions(**kw).validate()
    else:
        OODTestOptions(**kw).validate()
    assert not work.exists()


def test_the_defaults_are_valid():
    assert OODTestOptions().validate() is None
    OODTestOptions(**NON_DEFAULT).validate()


# the flags of tools/ood_test.py that are not options: the model, the work
# dir and the Runner's
RUNNER_FLAGS = {'config', 'checkpoint', 'work_dir', 'cfg_options',
                'launcher', 'unsafe_load', 'local_rank', 'debug', 'verbose'}
# the flags that set an option of another name
FOLDED = {'no_id_eval': 'id_eval', 'bootstrap_seed': 'bootstrap',
          'bootstrap_level': 'bootstrap'}


def _same(a, b) -> bool:
    """Equal values, a list and a tuple (or an empty mapping) alike: the
    flags give lists (``--tune``: a mapping) where the fields default to
    tuples."""
    def plain(v):
        return list(v) if isinstance(v, (list, tuple, dict)) else v
    return plain(a) == plain(b)


def test_the_options_are_the_tools_flags(monkeypatch):
    """A new option needs a flag of tools/ood_test.py, a new flag an
    option (or a place in RUNNER_FLAGS / FOLDED), with the same default."""
    from mmseg_ood.tools.ood_test import build_options, parse_args
    monkeypatch.setenv('LOCAL_RANK', '0')
    args = parse_args([STREET_CONFIG, 'model.pth'])
    flags = {FOLDED.get(d, d) for d in vars(args)} - RUNNER_FLAGS
    assert sorted(flags) == sorted(FIELDS)
    tool_defaults, defaults = build_options(args), OODTestOptions()
    for name in FIELDS:
        assert _same(getattr(tool_defaults, name), getattr(defaults, name)),\
            name


def test_every_option_reaches_ood_test_from_its_flag(monkeypatch):
    """Each option changed from its flag arrives changed at ood_test (two
    runs: --open-set-iou needs the ID pass that --no-id-eval skips)."""
    from mmseg_ood.tools.ood_test import main
    monkeypatch.setenv('LOCAL_RANK', '0')
    seen = []
    monkeypatch.setattr(mmseg_ood.apis, 'ood_test',
                        lambda *args, **kwargs: seen.append((args, kwargs)))
    main([STREET_CONFIG, 'model.pth', '--work-dir', 'out', '--unsafe-load',
          '--cfg-options', 'model.test_cfg.mode=whole',
          '--datasets', 'road_anomaly21', 'fs_static',
          '--scorers', 'msp', 'sml', '--sml-stats', 'stats.json',
          '--sml-fit-on', 'val', '--fit-on', 'val', '--tune', 'eta',
          'temperature=0.1,1',
          '--tune-on', 'fs_static', '--show-dir', 'heat', '--show-num', '3',
          '--export-smiyc', 'smiyc', '--export-transform', 'none',
          '--component-threshold', 'tpr:0.9', '--per-image',
          '--bootstrap', '100', '--bootstrap-seed', '1',
          '--bootstrap-level', '0.9', '--tta',
          '--meta-classifier', 'meta.json', '--no-id-eval',
          '--vis-backend', 'tensorboard'])
    main([STREET_CONFIG, 'model.pth', '--open-set-iou'])
    (args, kwargs), (open_set_args, _) = seen
    assert args[:2] == (STREET_CONFIG, 'model.pth')
    assert kwargs == dict(work_dir='out',
                          cfg_options={'model.test_cfg.mode': 'whole'},
                          launcher='none', unsafe_load=True)
    options, open_set, defaults = args[2], open_set_args[2], OODTestOptions()
    changed = {n for o in (options, open_set) for n in FIELDS
               if not _same(getattr(o, n), getattr(defaults, n))}
    assert sorted(changed) == sorted(FIELDS)
    assert options == OODTestOptions(
        datasets=['road_anomaly21', 'fs_static'], scorers=['msp', 'sml'],
        tune=dict(eta=TUNE_GRID['eta'], temperature=(0.1, 1.0)),
        tune_on='fs_static', show_dir='heat', show_num=3,
        export_smiyc='smiyc', export_transform='none',
        component_threshold='tpr:0.9', per_image=True,
        bootstrap=dict(samples=100, seed=1, level=0.9), tta=True,
        id_eval=False, open_set_iou=False, sml_stats='stats.json',
        sml_fit_on='val', fit_on='val', meta_classifier='meta.json',
        vis_backends=['tensorboard'])
    assert open_set == OODTestOptions(datasets=['synthetic_ood'], tune={},
                                      open_set_iou=True)
