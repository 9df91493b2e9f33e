"""Every ```python block of README.md and of the documentation site
(docs/en) runs, so documentation drift fails the suite.

Two kinds of block:

- config fragments (``_base_ = ...``, or only assignments of dicts and
  lists): loaded with mmengine's ``Config.fromfile``; a fragment without
  ``_base_`` is what the README says it is, lines of a config that inherits
  a model-zoo config, and is loaded on top of :data:`ZOO_BASE`. Every
  ``type=`` it names must be registered (mmseg's registries, with
  mmengine's, or ``OOD_SCORERS``), and its hooks, evaluator and the model
  parts it changes (heads, losses) must build.
- code snippets: executed in a fresh directory, with the placeholder names
  they use (``config``, ``checkpoint``, ``runner``, ...) and the input files
  they name (``img.png``, ``iter_2000.pth``) made from the tiny model that
  ``trained_work_dir`` trained on ``synthetic_root``. A name or file the test
  does not provide fails with the README line.
"""
import ast
import builtins
import functools
import os.path as osp
import re
import shutil

import pytest

from conftest import REPO, STREET_CONFIG
from doc_pages import DOCS, doc_pages, fenced_blocks

README = osp.join(REPO, 'README.md')
#: The model-zoo config of the README's "In your own config" block.
ZOO_BASE = ('mmseg::deeplabv3plus/'
            'deeplabv3plus_r50-d8_4xb2-40k_cityscapes-512x1024.py')


def documents():
    """README.md and every Markdown page of docs/en."""
    return [README] + [osp.join(DOCS, page) for page in doc_pages()]


#: ``(path, line, text)`` of every ```python block of the documentation.
BLOCKS = [(path, line, text) for path in documents()
          for line, text in fenced_blocks(path, 'python')]


def is_config_fragment(text):
    """A ``_base_`` config, or nothing but assignments of dicts / lists
    (``custom_hooks = [...]``, ``test_evaluator = dict(...)``)."""
    if re.search(r'^_base_\s*=', text, re.M) or '{{_base_.' in text:
        return True
    tree = ast.parse(text)
    return all(
        isinstance(node, ast.Assign) and (
            isinstance(node.value, (ast.List, ast.Dict)) or
            (isinstance(node.value, ast.Call) and
             getattr(node.value.func, 'id', None) == 'dict'))
        for node in tree.body)


def free_names(text):
    """Names a snippet reads but neither assigns, imports nor gets from
    builtins."""
    tree = ast.parse(text)
    bound, used = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (used if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split('.')[0])
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return sorted(used - bound - set(dir(builtins)))


def input_files(text):
    """File names a snippet passes as string literals (images,
    checkpoints)."""
    return sorted({
        node.value for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        and re.fullmatch(r'[\w./-]+\.(png|jpg|pth|json)', node.value)})


def test_the_docs_have_both_kinds_of_block():
    kinds = {is_config_fragment(text) for _, _, text in BLOCKS}
    assert kinds == {True, False}, 'expected config fragments and code ' \
        'snippets among the ```python blocks of the documentation'


# config fragments -----------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _registered_names():
    from mmseg.utils import register_all_modules

    import mmseg.registry as mmseg_registry
    from mmseg_ood.scorers import OOD_SCORERS
    from mmseg_ood.utils import registered_types
    register_all_modules(init_default_scope=False)
    names = set(OOD_SCORERS.module_dict)
    for reg in vars(mmseg_registry).values():
        if hasattr(reg, 'module_dict'):
            names.update(registered_types('mmseg', reg.name))
    return names


def _fragment_types(text):
    return sorted(set(re.findall(r'\btype\s*=\s*[\'"]([\w.]+)[\'"]', text)))


def cases(config_fragments):
    """The blocks of one kind as pytest params, id ``line<N>``."""
    params = []
    for path, line, text in BLOCKS:
        if is_config_fragment(text) != config_fragments:
            continue
        where = osp.relpath(path, DOCS) if path != README else 'README.md'
        params.append(pytest.param(path, line, text, id=f'{where}:{line}'))
    return params


@pytest.mark.parametrize('path,line,text', cases(config_fragments=True))
def test_config_fragment_loads_and_builds(path, line, text, tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import mmseg_ood  # noqa: F401  (registers the plugin's types)
    from mmseg.registry import HOOKS, METRICS, MODELS
    where = f'{osp.relpath(path, REPO)} line {line}'
    if not re.search(r'^_base_\s*=', text, re.M):
        text = f'_base_ = {ZOO_BASE!r}\n{text}'
    path = tmp_path / 'fragment.py'
    path.write_text(text)
    try:
        cfg = Config.fromfile(str(path))
    except Exception as e:
        pytest.fail(f'{where}: the config fragment does not load: '
                    f'{type(e).__name__}: {e}')
    known = _registered_names()
    unknown = [t for t in _fragment_types(text) if t not in known]
    assert not unknown, f'{where}: unregistered type(s) {unknown}'
    init_default_scope('mmseg')
    for hook in cfg.get('custom_hooks', []):
        HOOKS.build(hook)
    if isinstance(cfg.get('test_evaluator'), dict):
        METRICS.build(cfg.test_evaluator)
    # the parts of the model the fragment changes (a whole R50 is slow)
    for part in ('backbone', 'neck', 'decode_head', 'auxiliary_head'):
        if re.search(rf'\b{part}\s*=', text):
            MODELS.build(cfg.model[part])


# code snippets --------------------------------------------------------------
def _checkpoint(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


class Placeholders:
    """The names README snippets use without defining, each made on first
    use from the session's tiny trained model."""

    def __init__(self, tmp_path, synthetic_root, trained_work_dir):
        self.tmp_path = tmp_path
        self.synthetic_root = synthetic_root
        self.trained_work_dir = trained_work_dir

    def files(self):
        """Input files a snippet may name, copied into its directory."""
        return {
            'img.png': osp.join(self.synthetic_root, 'street', 'ood',
                                'images', '0000.png'),
            'iter_2000.pth': _checkpoint(self.trained_work_dir),
            'calibration.json': self._calibration(),
        }

    def _calibration(self):
        from mmseg_ood.formats.threshold_file import OODCalibration
        from mmseg_ood.utils import file_sha256
        ckpt = _checkpoint(self.trained_work_dir)
        return OODCalibration(
            scorer_name='energy', scorer_config=dict(type='energy'),
            threshold=0.0, rule='id_fpr', target=0.01, dataset='val',
            checkpoint_sha256=file_sha256(ckpt),
            model=dict(checkpoint=ckpt, num_classes=6)).save(
                str(self.tmp_path / 'given_calibration.json'))

    def config(self):
        # the trained model's config, loaded in one process
        path = self.tmp_path / 'config.py'
        loaders = '\n'.join(
            f'{split}_dataloader = dict(num_workers=0, '
            'persistent_workers=False)'
            for split in ('train', 'val', 'test'))
        path.write_text(f'_base_ = {STREET_CONFIG!r}\n{loaders}\n')
        return str(path)

    def checkpoint(self):
        return _checkpoint(self.trained_work_dir)

    def runner(self):
        from mmseg_ood.engine.runner import build_runner
        from mmseg_ood.utils import load_config
        cfg = load_config(self.config(), work_dir=str(self.tmp_path / 'run'))
        cfg.load_from = 'iter_2000.pth'
        return build_runner(cfg)

    def _maps(self, seed):
        import numpy as np
        rng = np.random.default_rng(seed)
        labels = (rng.random((2, 16, 16)) < 0.3).astype(np.uint8)
        labels[:, 0] = 255
        return rng.normal(labels, 1.0).astype(np.float32), labels

    def scores(self):
        return self._maps(0)[0]

    def labels(self):
        return self._maps(0)[1]

    def stream(self):
        return list(zip(*self._maps(1)))

    def other_worker(self):
        from mmseg_ood.evaluation import PixelOODAccumulator
        return PixelOODAccumulator(name='energy').update(*self._maps(2))

    @classmethod
    def names(cls):
        return {n for n in vars(cls) if not n.startswith('_')} - {
            'files', 'names'}


@pytest.mark.parametrize('path,line,text', cases(config_fragments=False))
def test_code_snippet_runs(path, line, text, tmp_path, monkeypatch,
                           synthetic_root, trained_work_dir):
    where = f'{osp.relpath(path, REPO)} line {line}'
    missing = [n for n in free_names(text) if n not in Placeholders.names()]
    assert not missing, (
        f'{where}: the snippet uses {missing}, which '
        'tests/docs/test_doc_snippets.py does not provide; add them to '
        'Placeholders or define them in the snippet')
    given = Placeholders(tmp_path, synthetic_root, trained_work_dir)
    files = given.files()
    unknown = [f for f in input_files(text) if f not in files]
    assert not unknown, (
        f'{where}: the snippet reads {unknown}, which '
        'tests/docs/test_doc_snippets.py does not provide '
        '(Placeholders.files)')
    monkeypatch.setenv('MMSEG_OOD_DATA', synthetic_root)
    monkeypatch.chdir(tmp_path)
    for name in input_files(text):
        shutil.copy(files[name], name)
    namespace = {'__name__': '__readme__'}
    namespace.update({n: getattr(given, n)() for n in free_names(text)})
    code = compile('\n' * line + text, path, 'exec')  # the file's lines
    exec(code, namespace)


# init_model: what the score_image example loads with ------------------------
def test_init_model_loads_a_runner_checkpoint_safely(trained_work_dir,
                                                     monkeypatch):
    import pickle

    import torch
    from mmengine.utils import digit_version

    from mmseg.apis import init_model as mmseg_init_model
    from mmseg_ood.apis import init_model
    ckpt = _checkpoint(trained_work_dir)
    if digit_version(torch.__version__) >= digit_version('2.6.0'):
        # the problem: torch's default weights_only=True refuses the file
        # in mmseg's own init_model
        with pytest.raises(pickle.UnpicklingError, match='HistoryBuffer'):
            mmseg_init_model(STREET_CONFIG, ckpt, device='cpu')
    loads, torch_load = [], torch.load

    def spy(*args, **kwargs):
        loads.append(kwargs.get('weights_only'))
        return torch_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    model = init_model(STREET_CONFIG, ckpt)
    assert loads and set(loads) == {True}  # never unrestricted pickle
    monkeypatch.setattr(torch, 'load', torch_load)
    saved = torch.load(ckpt, map_location='cpu', weights_only=False)
    own = model.state_dict()
    for name, value in saved['state_dict'].items():
        assert torch.equal(own[name], value), name
    assert model.dataset_meta == saved['meta']['dataset_meta']
    assert not model.training and model.cfg.model.train_cfg is None
    assert next(model.parameters()).device == torch.device('cpu')


def test_init_model_names_a_checkpoint_of_other_classes(trained_work_dir,
                                                        tmp_path):
    import torch

    from mmseg_ood.apis import init_model
    from mmseg_ood.utils import load_checkpoint_file
    state = load_checkpoint_file(_checkpoint(trained_work_dir))['state_dict']
    state['decode_head.conv_seg.weight'] = \
        state['decode_head.conv_seg.weight'][:3]
    state['decode_head.conv_seg.bias'] = state['decode_head.conv_seg.bias'][:3]
    other = str(tmp_path / 'three_classes.pth')
    torch.save({'state_dict': state, 'meta': {}}, other)
    with pytest.raises(ValueError) as info:
        init_model(STREET_CONFIG, other)
    msg = str(info.value)
    assert other in msg and STREET_CONFIG in msg
    assert 'decode_head.conv_seg.weight: checkpoint (3, ' in msg
    assert 'num_classes' in msg


def test_init_model_names_a_missing_checkpoint(tmp_path):
    from mmseg_ood.apis import init_model
    missing = str(tmp_path / 'no_such.pth')
    with pytest.raises(FileNotFoundError, match=re.escape(missing)):
        init_model(STREET_CONFIG, missing)


def test_init_model_takes_package_configs_and_config_objects():
    from mmengine.config import Config

    from mmseg_ood.apis import init_model
    name = ('mmseg_ood::synthetic/'
            'deeplabv3plus_r18-d8_1xb8-300it_synthetic-street-128x256.py')
    model = init_model(name, cfg_options={'model.decode_head.num_classes': 3})
    assert model.decode_head.num_classes == 3
    model = init_model(Config.fromfile(STREET_CONFIG))
    assert model.cfg.filename == STREET_CONFIG
    with pytest.raises(FileNotFoundError, match='mmseg_ood::nothing.py'):
        init_model('mmseg_ood::nothing.py')
