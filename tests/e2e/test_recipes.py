"""docs/en/results/recipes.md and configs/recipes/: the recipes for the
papers' tables on the real benchmarks.

Nothing here downloads or runs a recipe (no data or weights are reachable).
What is checked instead:

- every recipe config loads, builds its whole model (on the ``meta``
  device: shapes without memory, so a ResNet-101 takes a fraction of a
  second) and its test metrics, and is what its comment says (the zoo's
  model, the IBE head wrapping exactly the control's head, a zoo checkpoint
  that converts into the IBE model);
- every command in the page's ```bash blocks goes through its tool's own
  argument parser; the configs, dataset presets and scorers it names exist;
  every downloaded address is a weights URL of mmseg's model zoo; every
  checkpoint a command reads is written by an earlier command (downloaded,
  converted, or trained, under the name the config's schedule gives);
- every number of a paper table on the page occurs in that paper's text;
- the ``NAME:key=value`` scorer syntax the recipes use (parsing, errors,
  and an ``ood_test`` run whose ``n_energy:eta=1.5`` equals an independent
  computation).
"""
import contextlib
import copy
import functools
import glob
import io
import os
import os.path as osp
import re
import shlex
from unittest import mock

import numpy as np
import pytest
import torch
import yaml
from mmengine.config import Config

from conftest import (QUICK_CFG, REPO, STREET_CONFIG, package_tool,
                      zoo_config_path)

DOC = osp.join(REPO, 'docs', 'en', 'results', 'recipes.md')
RECIPES = osp.join(REPO, 'configs', 'recipes')
PAPERS = '/work/shared/papers'
CITYSCAPES = 'deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024_ood.py'
CONTROL = 'deeplabv3plus_r101-d8_4xb4-20k-ft_voc12aug-512x512.py'
IBE = 'deeplabv3plus_r101-d8-ibe_4xb4-20k-ft_voc12aug-512x512.py'
#: Commands other than the tools' that a recipe may contain.
SHELL_COMMANDS = ('export', 'wget', 'mkdir')


def _recipe(name):
    return osp.join(RECIPES, name)


@functools.lru_cache(maxsize=None)
def _config(path):
    """A config loaded once per session (a copy is not needed: tests only
    read it)."""
    return Config.fromfile(path)


def _meta_model(cfg):
    """The config's whole model on the meta device: SyncBN as BN, no
    pretrained weights (nothing is downloaded or allocated)."""
    from mmengine.registry import init_default_scope

    import mmseg_ood  # noqa: F401
    from mmseg.registry import MODELS
    from mmseg_ood.utils import sync_bn_to_bn
    model = copy.deepcopy(cfg.model)
    model.pretrained = None
    sync_bn_to_bn(model)
    init_default_scope('mmseg')
    with torch.device('meta'):
        return MODELS.build(model)


@functools.lru_cache(maxsize=None)
def zoo_weights():
    """Every weights URL of the model-zoo metafiles shipped with mmseg."""
    import mmseg
    urls = set()
    pattern = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', '*',
                       'metafile.yaml')
    for path in glob.glob(pattern):
        with open(path) as f:
            for model in (yaml.safe_load(f) or {}).get('Models', []):
                if model.get('Weights'):
                    urls.add(model['Weights'])
    assert urls, f'no model-zoo metafile found ({pattern})'
    return urls


def _zoo_weights_of(config_name):
    """The weights URL the metafile gives for one zoo config."""
    import mmseg
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs',
                    config_name.split('/')[0], 'metafile.yaml')
    with open(path) as f:
        for model in yaml.safe_load(f)['Models']:
            if model['Name'] == osp.splitext(config_name.split('/')[1])[0]:
                return model['Weights']
    raise AssertionError(f'{config_name} is not in {path}')


def _unscoped(obj):
    """A config value without the ``_scope_`` keys mmengine adds to what a
    config inherits through ``mmseg::``."""
    if isinstance(obj, dict):
        return {k: _unscoped(v) for k, v in obj.items() if k != '_scope_'}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unscoped(v) for v in obj)
    return obj


# the configs ----------------------------------------------------------------
RECIPE_CONFIGS = sorted(osp.basename(p)
                        for p in glob.glob(osp.join(RECIPES, '*.py')))


def test_the_recipes_are_there():
    assert RECIPE_CONFIGS == sorted([CITYSCAPES, CONTROL, IBE])


@pytest.mark.parametrize('name', RECIPE_CONFIGS)
def test_recipe_config_builds(name):
    from mmengine.registry import init_default_scope

    import mmseg_ood  # noqa: F401
    from mmseg.registry import METRICS
    cfg = _config(_recipe(name))
    assert 'mmseg_ood' in cfg.custom_imports['imports']
    # each inherits mmseg's shipped config (directly or through a recipe)
    chain = open(_recipe(name)).read()
    assert "_base_ = 'mmseg::" in chain or \
        "_base_ = './deeplabv3plus" in chain
    model = _meta_model(cfg)
    classes = 19 if 'cityscapes' in name else 21
    assert model.decode_head.num_classes == classes
    assert model.decode_head.conv_seg.out_channels == classes - (
        name == IBE)
    init_default_scope('mmseg')
    evaluators = cfg.test_evaluator if isinstance(
        cfg.test_evaluator, list) else [cfg.test_evaluator]
    for e in evaluators:
        METRICS.build(e)
    load_from = cfg.get('load_from')
    if load_from and load_from.startswith('http'):
        assert load_from in zoo_weights(), load_from


def test_cityscapes_recipe_is_the_zoo_model():
    """Only the plugin is added: model, pipeline and test set are the
    zoo's, so its published mIoU (80.97) is the check of a run."""
    zoo = Config.fromfile(zoo_config_path(
        'deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py'))
    cfg = _config(_recipe(CITYSCAPES))
    for key in ('model', 'test_pipeline', 'test_dataloader',
                'test_evaluator'):
        assert _unscoped(cfg[key]) == _unscoped(zoo[key]), key
    url = _zoo_weights_of(
        'deeplabv3plus/deeplabv3plus_r101-d8_4xb2-80k_cityscapes-512x1024.py')
    assert url in open(_recipe(CITYSCAPES)).read()
    assert url in open(DOC).read()


def test_ibe_recipe_differs_from_its_control_only_in_the_head():
    control = _config(_recipe(CONTROL))
    ibe = _config(_recipe(IBE))
    head = ibe.model.decode_head
    assert head.type == 'IBEHead' and head.background_index == 0
    assert head.head == control.model.decode_head
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg',
                'train_dataloader', 'test_dataloader', 'test_evaluator'):
        assert ibe[key] == control[key], key
    assert {k: v for k, v in ibe.model.items() if k != 'decode_head'} == {
        k: v for k, v in control.model.items() if k != 'decode_head'}
    # the control fine-tunes the zoo's 40k checkpoint with the zoo's 20k
    # schedule: same model as the 40k config, so the weights fit
    zoo40 = 'deeplabv3plus/deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py'
    zoo20 = 'deeplabv3plus/deeplabv3plus_r101-d8_4xb4-20k_voc12aug-512x512.py'
    assert control.load_from == _zoo_weights_of(zoo40)
    assert _unscoped(control.model) == _unscoped(
        Config.fromfile(zoo_config_path(zoo40)).model)
    z20 = Config.fromfile(zoo_config_path(zoo20))
    for key in ('optim_wrapper', 'param_scheduler', 'train_cfg'):
        assert _unscoped(control[key]) == _unscoped(z20[key]), key
    metrics = {e['type']: e for e in control.test_evaluator}
    assert metrics['ECEMetric']['background_index'] == 0
    assert metrics['ECEMetric']['num_bins'] == 15
    # IBE starts from the file the recipes page's convert command writes
    assert not ibe.load_from.startswith('http')
    assert f'--out {ibe.load_from}' in open(DOC).read()


def test_the_zoo_checkpoint_converts_into_the_ibe_recipe():
    """What ``convert_checkpoint --config`` checks, on the real shapes: the
    control's (= the zoo checkpoint's) state dict, converted, has exactly
    the IBE model's keys and shapes."""
    from mmseg_ood.models.heads.checkpoint_conversion import \
        to_implicit_background
    from mmseg_ood.utils import check_checkpoint_fits
    plain = _meta_model(_config(_recipe(CONTROL))).state_dict()
    ibe = _meta_model(_config(_recipe(IBE)))
    converted = to_implicit_background(plain, background_index=0)
    check_checkpoint_fits(ibe, converted, 'zoo', IBE)
    assert tuple(converted['decode_head.head.conv_seg.weight'].shape) == \
        (20, 512, 1, 1)
    assert tuple(plain['decode_head.conv_seg.weight'].shape) == \
        (21, 512, 1, 1)


def test_dtd_preset_reads_the_archive_layout(tmp_path):
    """DTD unpacks as images/<category>/<name>.jpg: every image is found,
    and no label file is asked for."""
    import cv2

    import mmseg_ood  # noqa: F401
    from mmseg.registry import DATASETS
    from mmseg_ood.datasets.presets import load_dataset_preset
    preset = load_dataset_preset(osp.join(RECIPES, 'ood_datasets', 'dtd.py'))
    assert preset.whole_image is True
    for cat, name in (('banded', 'banded_0002'), ('zigzagged', 'z_0001')):
        os.makedirs(tmp_path / 'images' / cat, exist_ok=True)
        cv2.imwrite(str(tmp_path / 'images' / cat / f'{name}.jpg'),
                    np.zeros((8, 8, 3), np.uint8))
    (tmp_path / 'images' / 'README.txt').write_text('not an image')
    ds = DATASETS.build(dict(preset.dataset, data_root=str(tmp_path)))
    assert [osp.relpath(d['img_path'], tmp_path) for d in ds] == [
        'images/banded/banded_0002.jpg', 'images/zigzagged/z_0001.jpg']
    assert all('seg_map_path' not in d for d in ds)


# the commands of docs/en/results/recipes.md -------------------------------
def bash_commands(text):
    """``(line, argv)`` of every command in the ```bash blocks: comments
    dropped, backslash continuations joined."""
    commands, block, start = [], None, None
    for n, line in enumerate(text.splitlines(), 1):
        fence = line.strip()
        if block is None and fence == '```bash':
            block = []
        elif block is not None and fence.startswith('```'):
            pending = ''
            for m, raw in block:
                if not pending:
                    start = m
                if raw.rstrip().endswith('\\'):
                    pending += raw.rstrip()[:-1] + ' '
                    continue
                argv = shlex.split(pending + raw, comments=True)
                pending = ''
                if argv:
                    commands.append((start, argv))
            assert not pending, f'line {start}: a continuation never ends'
            block = None
        elif block is not None:
            block.append((n, line))
    assert block is None, 'an unclosed ```bash block'
    return commands


def _tool_argv(argv):
    """``(tool, args, launched)`` of a tool command: ``python
    tools/X.py``, ``python -m mmseg_ood.tools.X`` or ``torchrun [opts]
    tools/X.py``; ``None`` for anything else."""
    if argv[0] == 'torchrun':
        rest = argv[1:]
        while rest and rest[0].startswith('-'):
            rest = rest[1:]
        if rest and re.fullmatch(r'tools/\w+\.py', rest[0]):
            return osp.basename(rest[0])[:-3], rest[1:], True
        return None
    if argv[0] not in ('python', 'python3') or len(argv) < 2:
        return None
    if re.fullmatch(r'tools/\w+\.py', argv[1]):
        return osp.basename(argv[1])[:-3], argv[2:], False
    if argv[1] == '-m' and len(argv) > 2 and argv[2].startswith(
            'mmseg_ood.tools.'):
        return argv[2].split('.')[-1], argv[3:], False
    return None


def _parse(tool, args):
    """The tool's own ``parse_args`` on ``args``; ``(namespace, None)`` or
    ``(None, argparse's message)``. The parser's side effects (the
    ``LOCAL_RANK`` variable, the SIGTERM handler, the launched flag) are
    kept out of this process."""
    import importlib

    from mmseg_ood.tools import runner_args
    module = importlib.import_module(package_tool(tool))
    err = io.StringIO()
    env = dict(os.environ)
    try:
        with contextlib.redirect_stderr(err), \
                mock.patch.object(runner_args, '_LAUNCHED', False), \
                mock.patch.object(runner_args, 'exit_cleanly_on_sigterm',
                                  lambda: None), \
                mock.patch('atexit.register'):
            return module.parse_args(args), None
    except SystemExit:
        return None, err.getvalue().strip().splitlines()[-1]
    finally:
        os.environ.clear()
        os.environ.update(env)


def _expand(value, exported):
    def sub(m):
        name = m.group(1) or m.group(2)
        if name not in exported:
            raise KeyError(name)
        return exported[name]
    return re.sub(r'\$\{(\w+)\}|\$(\w+)', sub, value)


def _checkpoint_name_ok(name, cfg):
    """A checkpoint a training run writes: ``iter_N`` / ``epoch_N`` with N
    at most the schedule's length."""
    m = re.fullmatch(r'(iter|epoch)_(\d+)\.pth', name)
    if not m:
        return False
    limit = cfg.train_cfg.get('max_iters' if m.group(1) == 'iter'
                              else 'max_epochs')
    return limit is not None and 0 < int(m.group(2)) <= limit


def check_recipe_commands(text, root=REPO):
    """Every problem of the commands in ``text`` (a Markdown page), one
    message each, naming the page line; ``[]`` if none."""
    from mmseg_ood.datasets.presets import load_dataset_preset
    from mmseg_ood.scorers import build_scorer
    problems, exported, files, runs = [], {}, set(), {}

    def config(line, path):
        full = osp.join(root, path)
        if not osp.isfile(full):
            problems.append(f'line {line}: no config {path}')
            return None
        return _config(full)

    def readable(line, path):
        path = osp.normpath(path)
        if path in files:
            return
        for work_dir, cfg in runs.items():
            if osp.dirname(path) == work_dir and \
                    _checkpoint_name_ok(osp.basename(path), cfg):
                return
        problems.append(f'line {line}: {path} is read before any command '
                        'writes it (download, conversion or training)')

    for line, argv in bash_commands(text):
        try:
            argv = [_expand(a, exported) for a in argv]
        except KeyError as e:
            problems.append(f'line {line}: ${e.args[0]} is not exported')
            continue
        if argv[0] == 'export':
            for item in argv[1:]:
                name, eq, value = item.partition('=')
                if not eq:
                    problems.append(f'line {line}: export {item!r}')
                exported[name] = value
            continue
        if argv[0] == 'wget':
            dest = argv[argv.index('-P') + 1] if '-P' in argv else '.'
            for url in (a for a in argv[1:] if a.startswith('http')):
                if url not in zoo_weights():
                    problems.append(f'line {line}: {url} is not a weights '
                                    "URL of mmseg's model zoo")
                files.add(osp.normpath(osp.join(dest, osp.basename(url))))
            continue
        if argv[0] in SHELL_COMMANDS:
            continue
        found = _tool_argv(argv)
        if found is None:
            problems.append(f'line {line}: not a tool command nor one of '
                            f'{SHELL_COMMANDS}: {" ".join(argv)}')
            continue
        tool, args, launched = found
        if not osp.isfile(osp.join(root, 'tools', f'{tool}.py')):
            problems.append(f'line {line}: no tool tools/{tool}.py')
            continue
        ns, error = _parse(tool, args)
        if ns is None:
            problems.append(f'line {line}: tools/{tool}.py: {error}')
            continue
        if launched and getattr(ns, 'launcher', None) != 'pytorch':
            problems.append(f'line {line}: torchrun without --launcher '
                            'pytorch runs N separate jobs')
        if tool == 'robustness_test':
            for cfg_path, ckpt in ns.pairs:
                config(line, cfg_path)
                readable(line, ckpt)
        elif tool == 'convert_checkpoint':
            readable(line, ns.src)
            if ns.config:
                config(line, ns.config)
            files.add(osp.normpath(ns.out))
        elif hasattr(ns, 'config'):
            cfg = config(line, ns.config)
            if hasattr(ns, 'checkpoint'):
                readable(line, ns.checkpoint)
            if tool == 'train' and cfg is not None:
                load_from = cfg.get('load_from')
                if load_from and not load_from.startswith('http'):
                    readable(line, load_from)
                if not ns.work_dir:
                    problems.append(f'line {line}: train without --work-dir')
                else:
                    runs[osp.normpath(ns.work_dir)] = cfg
        for name in getattr(ns, 'datasets', None) or []:
            with _in(root):
                try:
                    load_dataset_preset(name)
                except ValueError as e:
                    problems.append(f'line {line}: {e}')
        for name in getattr(ns, 'scorers', None) or []:
            try:
                build_scorer(name)
            except (ValueError, TypeError) as e:
                problems.append(f'line {line}: {e}')
    return problems


@contextlib.contextmanager
def _in(directory):
    before = os.getcwd()
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(before)


def test_every_recipe_command_parses_and_names_what_exists():
    text = open(DOC).read()
    commands = bash_commands(text)
    tools = {_tool_argv(a)[0] for _, a in commands if _tool_argv(a)}
    # one command per table at least: ood_test (thesis, entropy max, IBE
    # Table 2), train, test (IBE), convert_checkpoint, robustness_test
    assert {'ood_test', 'train', 'test', 'convert_checkpoint',
            'robustness_test', 'prepare_coco_ood'} <= tools
    assert check_recipe_commands(text) == []


def test_the_checker_fails_on_bad_commands():
    """A recipe with mistakes: each is named (the check can fail)."""
    bad = '\n'.join([
        '```bash',
        'export X=a',
        'python tools/ood_test.py configs/recipes/no_such.py ckpt.pth \\',
        '    --datasets lost_and_found',
        f'python tools/ood_test.py configs/recipes/{CITYSCAPES} ckpt.pth '
        '--no-such-flag',
        f'python tools/ood_test.py configs/recipes/{CITYSCAPES} x.pth '
        '--datasets no_such_set --scorers n_energy:etaa=1.5',
        f'python tools/test.py configs/recipes/{CONTROL} $UNSET/x.pth',
        'wget -P checkpoints https://example.com/weights.pth',
        f'torchrun --nproc_per_node=2 tools/train.py configs/recipes/{IBE} '
        '--work-dir w',
        f'python tools/test.py configs/recipes/{CONTROL} w/iter_99999.pth',
        'rm -rf data',
        '```'])
    problems = check_recipe_commands(bad)
    expected = [
        ('line 3:', 'no config configs/recipes/no_such.py'),
        ('line 3:', 'ckpt.pth is read before any command writes it'),
        ('line 5:', 'error: unrecognized arguments: --no-such-flag'),
        ('line 6:', "unknown dataset 'no_such_set'"),
        ('line 6:', "scorer 'n_energy': unknown argument 'etaa'"),
        ('line 6:', 'x.pth is read before'),
        ('line 7:', '$UNSET is not exported'),
        ('line 8:', 'https://example.com/weights.pth is not a weights URL'),
        ('line 9:', 'torchrun without --launcher pytorch'),
        # the IBE config starts from the converted file, never written here
        ('line 9:', 'checkpoints/deeplabv3plus_r101-d8-ibe_voc12aug_init.pth'
         ' is read before'),
        ('line 10:', 'w/iter_99999.pth is read before'),  # the schedule: 20k
        ('line 11:', 'not a tool command'),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (
            where, what, problems)
    assert len(problems) == len(expected), problems


# the paper numbers ----------------------------------------------------------
def paper_tables(text):
    """``(line, paper file, [cell, ...])`` of each table after a
    ``<!-- paper: FILE -->`` marker: the body cells, row labels left
    out."""
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        m = re.fullmatch(r'<!-- paper: ([\w.-]+) -->', line.strip())
        if not m:
            continue
        rows = []
        for row in lines[i + 1:]:
            if not row.startswith('|'):
                break
            rows.append(row)
        assert len(rows) > 2, f'line {i + 1}: no table after the marker'
        cells = [c.strip() for r in rows[2:] for c in r.strip('|').split(
            '|')[1:]]
        out.append((i + 1, m.group(1), cells))
    return out


def numbers_not_in(cells, source):
    """The cells that are not a number occurring in ``source`` as a whole
    number (``69.1`` is not found in ``69.15`` nor in ``169.1``)."""
    return [c for c in cells if not re.fullmatch(r'\d+(\.\d+)?', c) or
            not re.search(rf'(?<![\d.]){re.escape(c)}(?![\d])', source)]


def test_paper_numbers_are_the_papers():
    tables = paper_tables(open(DOC).read())
    assert [p for _, p, _ in tables] == [
        'norm-decoupling-thesis.txt',
        'entropy-maximization-meta-classification.txt',
        'ibe-implicit-background-estimation.txt', 'scribe-sigmoid-ibe.txt']
    for line, paper, cells in tables:
        path = osp.join(PAPERS, paper)
        if not osp.isfile(path):
            pytest.skip(f'{path} is not on this machine')
        source = open(path).read()
        assert cells, line
        assert numbers_not_in(cells, source) == [], f'line {line}, {paper}'


def test_the_checker_of_paper_numbers_can_fail():
    """A mistyped number (69.2 for SCrIBE's 69.1) is found out; the row
    label is not taken for a number."""
    path = osp.join(PAPERS, 'scribe-sigmoid-ibe.txt')
    if not osp.isfile(path):
        pytest.skip(f'{path} is not on this machine')
    text = ('<!-- paper: scribe-sigmoid-ibe.txt -->\n| m | val |\n'
            '|---|---|\n| 42.0 | 69.2 |\n| y | 69.1 |\n')
    (_, _, cells), = paper_tables(text)
    assert cells == ['69.2', '69.1']
    assert numbers_not_in(cells, open(path).read()) == ['69.2']
    assert numbers_not_in(['n/a', '9.1'], '69.1 19.15') == ['n/a', '9.1']


# NAME:key=value scorers -----------------------------------------------------
@pytest.mark.parametrize('spec,cfg', [
    ('msp', dict(type='msp')),
    ('n_energy:eta=1.5', dict(type='n_energy', eta=1.5)),
    ('n_energy: eta = 1.5 , temperature=2, use_bias=True',
     dict(type='n_energy', eta=1.5, temperature=2, use_bias=True)),
    ('sml:stats_file=sml.json', dict(type='sml', stats_file='sml.json')),
    ('gen:top_m=None', dict(type='gen', top_m=None)),
])
def test_scorer_spec_parses(spec, cfg):
    from mmseg_ood.scorers import parse_scorer_spec
    assert parse_scorer_spec(spec) == cfg


@pytest.mark.parametrize('spec,error,match', [
    ('n_energy:', ValueError, "nothing after ':'"),
    (':eta=1', ValueError, 'no name'),
    ('n_energy:eta', ValueError, "'eta' is not 'key=value'"),
    ('n_energy:=1', ValueError, "'=1' is not 'key=value'"),
    ('n_energy:eta=1,eta=2', ValueError, "'eta' is given twice"),
    ('n_energy:type=msp', ValueError, "'type' is the name"),
    ('n_energy:etaa=1.5', TypeError, r"'etaa' \(did you mean 'eta'"),
    ('n_energy:eta=high', TypeError, '`eta` must be a number'),
    ('msq:eta=1', ValueError, "unknown scorer 'msq'"),
])
def test_bad_scorer_specs_are_named(spec, error, match):
    from mmseg_ood.scorers import build_scorer
    with pytest.raises(error, match=match):
        build_scorer(spec)


def test_scorer_spec_builds_the_parameters():
    from mmseg_ood.models.ood_scoring import build_scorers
    built = build_scorers(['n_energy', 'n_energy:eta=1.5,temperature=0.5'])
    assert list(built) == ['n_energy', 'n_energy:eta=1.5,temperature=0.5']
    plain, cw = built.values()
    assert (plain.eta, plain.temperature) == (1.0, 1.0)
    assert (cw.eta, cw.temperature) == (1.5, 0.5)


def test_ood_test_reports_a_parametrized_scorer(tmp_path, monkeypatch,
                                                synthetic_root,
                                                trained_work_dir,
                                                single_thread):
    """``--scorers n_energy n_energy:eta=1.5``: both are reported, each
    equal to an independent computation (score_image with the scorer's
    config dict, then the streaming metric, image by image as the tool);
    in the same process, so on the same thread count."""
    import cv2

    from mmseg_ood.apis import init_model, ood_test, score_image
    from mmseg_ood.evaluation import PixelOODAccumulator
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    ckpt = open(osp.join(trained_work_dir,
                         'last_checkpoint')).read().strip()
    payload = ood_test(STREET_CONFIG, ckpt, str(tmp_path),
                       datasets=['synthetic_ood'],
                       scorers=['n_energy', 'n_energy:eta=1.5'],
                       id_eval=False, cfg_options=dict(QUICK_CFG))
    res = payload['results']['synthetic_ood']
    assert list(res) == ['n_energy', 'n_energy:eta=1.5']
    model = init_model(STREET_CONFIG, ckpt)
    root = osp.join(synthetic_root, 'street', 'ood')
    configs = {'n_energy': dict(type='n_energy'),
               'n_energy:eta=1.5': dict(type='n_energy', eta=1.5)}
    streams = {n: PixelOODAccumulator(name=n) for n in configs}
    maps = {n: [] for n in configs}
    for name in sorted(os.listdir(osp.join(root, 'images'))):
        label = cv2.imread(osp.join(root, 'labels_masks', name[:-4] +
                                    '_labels_semantic.png'),
                           cv2.IMREAD_UNCHANGED)
        scores = score_image(model, osp.join(root, 'images', name),
                             [dict(c, name=n) for n, c in configs.items()])
        for n in configs:
            streams[n].update(scores[n], label)
            maps[n].append(np.asarray(scores[n]))
    for n in configs:
        direct = streams[n].compute()
        for k in ('auroc', 'ap', 'fpr95'):
            assert res[n][k] == pytest.approx(direct[k]), (n, k)
    # eta reached the scorer: the two maps differ, and so do their numbers
    # (the comparison above tells them apart)
    assert not all(np.allclose(a, b) for a, b in zip(*maps.values()))
    assert res['n_energy']['auroc'] != res['n_energy:eta=1.5']['auroc']
