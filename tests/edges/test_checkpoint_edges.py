"""Checkpoints at their edges: files that are not checkpoints, checkpoints
without ``meta`` or ``state_dict``, the weights' hash, ``--device``, and
``tools/convert_checkpoint.py``'s output (links to the source, interrupted
writes, class names)."""
import os
import os.path as osp
import pickle

import pytest
import torch

from conftest import REPO
from mmseg_ood.errors import (DamagedFileError, InvalidValueError,
                              MissingInputError, OutputPathError)
from mmseg_ood.utils import (UnsafeCheckpointError, check_device,
                             checkpoint_meta, checkpoint_state_dict,
                             load_checkpoint_file, safe_checkpoint_loading,
                             state_dict_sha256, with_meta)

CFG = osp.join(REPO, 'configs', 'synthetic',
               'deeplabv3plus_r18-d8{}_1xb8-300it_synthetic-objects-'
               '128x128.py')
PLAIN, IBE = CFG.format(''), CFG.format('-ibe')


def _weights():
    g = torch.Generator().manual_seed(0)
    return {'backbone.w': torch.randn(3, 4, generator=g),
            'decode_head.conv_seg.weight': torch.randn(6, 8, 1, 1,
                                                       generator=g),
            'decode_head.conv_seg.bias': torch.randn(6, generator=g),
            'bn.num_batches_tracked': torch.tensor(7)}


def _damaged_files(tmp_path):
    """name -> path of a file that is not a checkpoint."""
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': _weights()}, good)
    legacy = tmp_path / 'legacy.pth'
    torch.save({'state_dict': _weights()}, legacy,
               _use_new_zipfile_serialization=False)
    files = {
        'empty': b'',
        'text': b'this is a text file\n',
        'json': b'{"state_dict": {}}',
        'random bytes': os.urandom(4096),
        'truncated zip': good.read_bytes()[:good.stat().st_size // 2],
        'truncated legacy': legacy.read_bytes()[:legacy.stat().st_size // 2],
        'zip header only': good.read_bytes()[:64],
        'plain pickle of a dict': pickle.dumps({'state_dict': {}}),
    }
    out = {}
    for name, data in files.items():
        path = tmp_path / (name.replace(' ', '_') + '.pth')
        path.write_bytes(data)
        out[name] = str(path)
    return out


@pytest.mark.parametrize('unsafe', [False, True])
def test_files_that_are_not_checkpoints_are_named(tmp_path, unsafe):
    for name, path in _damaged_files(tmp_path).items():
        before = open(path, 'rb').read()
        with pytest.raises(DamagedFileError) as info:
            load_checkpoint_file(path, unsafe=unsafe)
        msg = str(info.value)
        assert path in msg, (name, msg)
        assert 'not a checkpoint written by torch.save' in msg, (name, msg)
        assert '\n' not in msg
        assert open(path, 'rb').read() == before


@pytest.mark.parametrize('payload, kind', [
    ([1, 2], 'list'), (torch.zeros(3), 'Tensor'), ('text', 'str'),
    (None, 'NoneType')])
def test_a_pickle_of_something_else_than_a_dict(tmp_path, payload, kind):
    path = str(tmp_path / 'x.pth')
    torch.save(payload, path)
    with pytest.raises(DamagedFileError, match=f'x.pth holds a {kind}'):
        load_checkpoint_file(path)


def test_missing_folder_and_device_files(tmp_path):
    with pytest.raises(MissingInputError, match='nope.pth') as info:
        load_checkpoint_file(str(tmp_path / 'nope.pth'))
    assert isinstance(info.value, FileNotFoundError)
    with pytest.raises(DamagedFileError, match='is a folder'):
        load_checkpoint_file(str(tmp_path))
    if osp.exists('/dev/null'):
        with pytest.raises(DamagedFileError, match='not a regular file'):
            load_checkpoint_file('/dev/null')


def test_unsafe_globals_are_still_refused_as_unsafe(tmp_path):
    import argparse
    path = str(tmp_path / 'foreign.pth')
    torch.save({'state_dict': {}, 'args': argparse.Namespace()}, path)
    with pytest.raises(UnsafeCheckpointError, match='--unsafe-load'):
        load_checkpoint_file(path)


def test_the_runner_path_names_a_damaged_file(tmp_path):
    from mmengine.runner import load_checkpoint
    path = _damaged_files(tmp_path)['truncated zip']
    with safe_checkpoint_loading(), pytest.raises(DamagedFileError,
                                                  match='truncated'):
        load_checkpoint(torch.nn.Module(), path, logger='silent')


@pytest.mark.parametrize('ckpt, message', [
    ({'state_dict': {'w': torch.zeros(1), 'step': 3}},
     "entry 'step' is a int, not a tensor"),
    ({'state_dict': [torch.zeros(1)]}, "'state_dict' is a list"),
    ({'state_dict': {0: torch.zeros(1)}}, 'has a key 0 of type int'),
    ({'model': {'w': torch.zeros(1)}, 'epoch': 3},
     "has no 'state_dict' and is not a bare state dict"),
    ({'meta': {'iter': 3}}, "has no 'state_dict'"),
    ([torch.zeros(1)], 'holds a list'),
])
def test_state_dict_is_checked(ckpt, message):
    with pytest.raises(DamagedFileError, match=message) as info:
        checkpoint_state_dict(ckpt, 'x.pth')
    assert 'x.pth' in str(info.value)


def test_meta_and_state_dict_of_every_layout():
    w = _weights()
    assert checkpoint_meta({'state_dict': w}) == {}
    assert checkpoint_meta({'state_dict': w, 'meta': None}) == {}
    assert checkpoint_meta({'state_dict': w, 'meta': [1]}) == {}
    assert checkpoint_meta([1]) == {}
    assert checkpoint_meta({'meta': {'a': 1}}) == {'a': 1}
    # bare, Runner-style and DDP-prefixed give the same parameters
    ddp = {'module.' + k: v for k, v in w.items()}
    for ckpt in (w, {'state_dict': w}, {'state_dict': ddp, 'meta': {}}):
        assert list(checkpoint_state_dict(ckpt)) == list(w)
    # mmseg's init_model indexes checkpoint['meta']: the loader gives one
    assert with_meta(w) == {'state_dict': w, 'meta': {}}
    assert with_meta({'state_dict': w})['meta'] == {}
    kept = {'state_dict': w, 'meta': {'a': 1}}
    assert with_meta(kept) is kept
    other = {'model': w, 'epoch': 1}  # another layout: left as it is
    assert with_meta(other) is other


def test_state_dict_hash_is_the_weights_not_the_file(tmp_path):
    w = _weights()
    base = state_dict_sha256({'state_dict': w})
    # the same weights in every layout and order, re-saved
    reordered = dict(reversed(list(w.items())))
    ddp = {'module.' + k: v for k, v in w.items()}
    runner = {'state_dict': w, 'meta': {'iter': 3}, 'optimizer': {}}
    for i, ckpt in enumerate([w, reordered, {'state_dict': ddp}, runner]):
        path = str(tmp_path / f'{i}.pth')
        torch.save(ckpt, path)
        assert state_dict_sha256(load_checkpoint_file(path)) == base
    legacy = str(tmp_path / 'legacy.pth')
    torch.save(w, legacy, _use_new_zipfile_serialization=False)
    assert state_dict_sha256(load_checkpoint_file(legacy)) == base
    # a view or a non-contiguous tensor hashes by its values
    t = dict(w, **{'backbone.w': w['backbone.w'].t().contiguous().t()})
    assert state_dict_sha256(t) == base
    # any change of a value, dtype, shape or name changes it
    changed = [
        dict(w, **{'backbone.w': w['backbone.w'] + 1e-7}),
        dict(w, **{'backbone.w': w['backbone.w'].double()}),
        dict(w, **{'backbone.w': w['backbone.w'].reshape(4, 3)}),
        {('x.' + k if k == 'backbone.w' else k): v for k, v in w.items()},
        {k: v for k, v in w.items() if k != 'backbone.w'},
    ]
    hashes = {state_dict_sha256(c) for c in changed}
    assert base not in hashes and len(hashes) == len(changed)
    # dtypes numpy has no bytes for, and empty tensors
    odd = {'a': torch.ones(2, dtype=torch.bfloat16),
           'b': torch.zeros(0, 3), 'c': torch.tensor(True)}
    assert len(state_dict_sha256(odd)) == 64
    with pytest.raises(DamagedFileError, match="'b' is a str"):
        state_dict_sha256({'state_dict': {'a': torch.ones(1), 'b': 'x'}})


def test_init_model_takes_a_checkpoint_without_meta(tmp_path):
    """mmseg's init_model reads checkpoint['meta']: a model-zoo file
    without one, and a bare state dict, load (and give the same model)."""
    from mmseg_ood.apis import init_model
    torch.manual_seed(0)
    model = init_model(PLAIN)
    sd = model.state_dict()
    runner = str(tmp_path / 'runner.pth')
    torch.save({'state_dict': sd, 'meta': {}}, runner)
    no_meta = str(tmp_path / 'no_meta.pth')
    torch.save({'state_dict': sd}, no_meta)
    bare = str(tmp_path / 'bare.pth')
    torch.save(sd, bare)
    for path in (no_meta, bare):
        loaded = init_model(PLAIN, path).state_dict()
        for k, v in sd.items():
            assert torch.equal(loaded[k], v), (path, k)
    damaged = str(tmp_path / 'damaged.pth')
    with open(damaged, 'wb') as f:
        f.write(_bytes_of(runner)[:1000])
    with pytest.raises(DamagedFileError, match='damaged.pth'):
        init_model(PLAIN, damaged)


# --device ---------------------------------------------------------------
@pytest.mark.parametrize('text, message', [
    ('gpu0', "'gpu0' is not a device"),
    ('', 'must be a device'),
    ('cuda:abc', 'is not a device'),
    ('meta', "device type 'meta' is not supported"),
])
def test_device_strings_that_are_not_devices(text, message):
    with pytest.raises(InvalidValueError, match=message) as info:
        check_device(text)
    assert '--device' in str(info.value)


def test_devices_this_machine_lacks():
    assert check_device('cpu') == torch.device('cpu')
    assert check_device(torch.device('cpu')).type == 'cpu'
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(InvalidValueError, match='--gpu cuda:99') as info:
        check_device('cuda:99', flag='--gpu')
    assert not isinstance(info.value, AssertionError)
    if count == 0:
        with pytest.raises(InvalidValueError, match='CUDA is not available'):
            check_device('cuda')
    else:
        assert check_device('cuda').type == 'cuda'
        assert check_device(f'cuda:{count - 1}').index == count - 1
        with pytest.raises(InvalidValueError,
                           match=f'has {count} CUDA device'):
            check_device(f'cuda:{count}')


def test_cuda_indices_on_a_machine_with_two_gpus(monkeypatch):
    """The CUDA branch without a GPU: torch's answers patched."""
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert check_device('cuda') == torch.device('cuda')
    assert check_device('cuda:1') == torch.device('cuda:1')
    with pytest.raises(InvalidValueError,
                       match=r'--device cuda:2: this machine has 2 CUDA '
                       r'devices \(cuda:0 to cuda:1\)'):
        check_device('cuda:2')


# tools/convert_checkpoint.py -------------------------------------------
@pytest.fixture(scope='module')
def plain(tmp_path_factory):
    """A plain objects model's checkpoint with the dataset's classes."""
    from mmseg_ood.apis import init_model
    from mmseg_ood.synthetic import OBJECTS_CLASSES
    torch.manual_seed(0)
    model = init_model(PLAIN)
    path = str(tmp_path_factory.mktemp('plain') / 'plain.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {
                    'classes': list(OBJECTS_CLASSES)}}}, path)
    return path


def _convert(argv, capsys):
    from mmseg_ood.tools.convert_checkpoint import main
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith('convert_checkpoint: error: '), err
    assert 'Traceback' not in err
    return err


def _no_temp_files(folder):
    return not [n for n in os.listdir(folder) if '.tmp' in n]


@pytest.mark.parametrize('link', ['same', 'symlink', 'hardlink',
                                  'relative'])
def test_output_that_is_the_source_by_any_name(plain, tmp_path, capsys,
                                               link, monkeypatch):
    src = str(tmp_path / 'src.pth')
    with open(plain, 'rb') as f, open(src, 'wb') as g:
        g.write(f.read())
    before = open(src, 'rb').read()
    out = str(tmp_path / 'out.pth')
    if link == 'same':
        out = src
    elif link == 'symlink':
        os.symlink(src, out)
    elif link == 'hardlink':
        os.link(src, out)
    else:
        monkeypatch.chdir(tmp_path)
        out = osp.join('.', 'sub', '..', 'src.pth')
        os.mkdir(tmp_path / 'sub')
    err = _convert([src, '--to', 'ibe', '--out', out], capsys)
    assert 'is the input' in err and 'src.pth' in err
    assert open(src, 'rb').read() == before
    assert _no_temp_files(tmp_path)


def test_output_folder_and_missing_folder(plain, tmp_path, capsys):
    err = _convert([plain, '--to', 'ibe', '--out', str(tmp_path)], capsys)
    assert 'is a folder' in err
    err = _convert([plain, '--to', 'ibe', '--out',
                    str(tmp_path / 'no' / 'x.pth')], capsys)
    assert 'does not exist' in err and 'create it first' in err


def test_output_that_is_the_config(plain, tmp_path, capsys):
    config = str(tmp_path / 'ibe.py')
    with open(config, 'w') as f:
        f.write(f'_base_ = [{IBE!r}]\n')
    before = open(config).read()
    err = _convert([plain, '--to', 'ibe', '--out', config, '--config',
                    config], capsys)
    assert 'is the input' in err and open(config).read() == before


@pytest.mark.parametrize('what', ['empty', 'text', 'truncated zip'])
def test_damaged_source(tmp_path, capsys, what):
    src = _damaged_files(tmp_path)[what]
    err = _convert([src, '--to', 'ibe', '--out', str(tmp_path / 'o.pth')],
                   capsys)
    assert src in err and 'not a checkpoint written by torch.save' in err
    assert not osp.exists(tmp_path / 'o.pth')


def test_source_without_state_dict_or_with_a_non_tensor(tmp_path, capsys):
    src = str(tmp_path / 'odd.pth')
    torch.save({'state_dict': {'decode_head.conv_seg.weight':
                               torch.zeros(2, 2, 1, 1), 'step': 3}}, src)
    err = _convert([src, '--to', 'ibe', '--out', str(tmp_path / 'o.pth')],
                   capsys)
    assert "entry 'step' is a int" in err and 'odd.pth' in err
    torch.save({'meta': {}}, src)
    err = _convert([src, '--to', 'ibe', '--out', str(tmp_path / 'o.pth')],
                   capsys)
    assert "has no 'state_dict'" in err


def test_failed_write_keeps_the_previous_output(plain, tmp_path,
                                                monkeypatch):
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    out = str(tmp_path / 'ibe.pth')
    convert_checkpoint(plain, 'ibe', out)
    good = open(out, 'rb').read()

    def killed(obj, path, *a, **k):  # half a file, then the process dies
        with open(path, 'wb') as f:
            f.write(good[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, 'save', killed)
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(plain, 'scribe', out)
    assert open(out, 'rb').read() == good
    assert _no_temp_files(tmp_path)

    def writes_nothing(obj, path, *a, **k):
        pass

    monkeypatch.setattr(torch, 'save', writes_nothing)
    with pytest.raises(OSError, match='left no data'):
        convert_checkpoint(plain, 'scribe', out)
    assert open(out, 'rb').read() == good
    assert _no_temp_files(tmp_path)


def test_a_new_output_is_a_whole_checkpoint(plain, tmp_path):
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    out = str(tmp_path / 'ibe.pth')
    convert_checkpoint(plain, 'ibe', out, config=IBE)
    ckpt = load_checkpoint_file(out)
    conv = ckpt['meta']['mmseg_ood_conversion']
    assert conv['source_state_dict_sha256'] == state_dict_sha256(
        load_checkpoint_file(plain))
    assert _no_temp_files(tmp_path)


def test_class_names_are_compared_with_the_config(plain, tmp_path, capsys):
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    from mmseg_ood.synthetic import OBJECTS_CLASSES
    ckpt = load_checkpoint_file(plain)
    renamed = list(OBJECTS_CLASSES)
    renamed[2] = 'zebra'
    ckpt['meta']['dataset_meta']['classes'] = renamed
    src = str(tmp_path / 'renamed.pth')
    torch.save(ckpt, src)
    out = str(tmp_path / 'o.pth')
    err = _convert([src, '--to', 'ibe', '--out', out, '--config', IBE],
                   capsys)
    assert "class 2 is 'zebra'" in err and 'renamed.pth' in err
    assert '--no-class-check' in err and not osp.exists(out)
    # the option skips it
    convert_checkpoint(src, 'ibe', out, config=IBE, check_classes=False)
    assert osp.isfile(out)
    # another number of classes is named by the counts
    ckpt['meta']['dataset_meta']['classes'] = renamed + ['extra']
    torch.save(ckpt, src)
    with pytest.raises(InvalidValueError, match='7 classes, the config 6'):
        convert_checkpoint(src, 'ibe', str(tmp_path / 'p.pth'), config=IBE)
    # mmseg 0.x's meta['CLASSES'] counts too
    ckpt['meta'] = {'CLASSES': renamed}
    torch.save(ckpt, src)
    with pytest.raises(InvalidValueError, match="'zebra'"):
        convert_checkpoint(src, 'ibe', str(tmp_path / 'p.pth'), config=IBE)
    # a checkpoint without class names is not refused
    ckpt.pop('meta')
    torch.save(ckpt, src)
    convert_checkpoint(src, 'ibe', str(tmp_path / 'p.pth'), config=IBE)


def test_bad_flag_values_are_one_line(plain, tmp_path, capsys):
    err = _convert([plain, '--to', 'ibe', '--out', str(tmp_path / 'o.pth'),
                    '--background-index', '9'], capsys)
    assert 'background_index' in err
    err = _convert([plain, '--to', 'plain', '--bias', 'relative', '--out',
                    str(tmp_path / 'o.pth')], capsys)
    assert '--bias applies to' in err


def test_output_path_error_comes_before_reading(tmp_path):
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    src = _damaged_files(tmp_path)['text']
    with pytest.raises(OutputPathError):
        convert_checkpoint(src, 'ibe', src)


def _bytes_of(path):
    with open(path, 'rb') as f:
        return f.read()
