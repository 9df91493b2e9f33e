"""tools/convert_checkpoint.py: a plain model's weights onto IBE / SCrIBE
heads and back, checked against the models the configs build."""
import os.path as osp

import pytest
import torch

from conftest import REPO, run_tool

CFG = osp.join(REPO, 'configs', 'synthetic',
               'deeplabv3plus_r18-d8{}_1xb8-300it_synthetic-objects-'
               '128x128.py')
PLAIN, IBE, SCRIBE = CFG.format(''), CFG.format('-ibe'), \
    CFG.format('-scribe')


@pytest.fixture(scope='module')
def plain(tmp_path_factory):
    """A plain model with random weights (a trained-looking conv_seg bias)
    and its checkpoint."""
    from mmseg_ood.apis import init_model
    from mmseg_ood.synthetic import OBJECTS_CLASSES
    torch.manual_seed(0)
    model = init_model(PLAIN)
    with torch.no_grad():
        model.decode_head.conv_seg.bias.normal_()
    path = str(tmp_path_factory.mktemp('plain') / 'plain.pth')
    torch.save({'state_dict': model.state_dict(),
                'meta': {'dataset_meta': {'classes': list(OBJECTS_CLASSES)}}},
               path)
    return model, path


def _head_logits(model, x):
    """The final head's logits before any resize."""
    with torch.no_grad():
        return model.decode_head(model.extract_feat(x))


@pytest.mark.parametrize('to,config', [('ibe', IBE), ('scribe', SCRIBE)])
def test_foreground_logits_are_the_plain_models(plain, tmp_path, to,
                                                config):
    from mmseg_ood.apis import init_model
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    model, src = plain
    out = str(tmp_path / f'{to}.pth')
    report = convert_checkpoint(src, to, out, config=config)
    assert report['checked'] == config and report['head'] == 'decode_head'
    converted = init_model(config, out)   # strict: no missing / unexpected
    x = torch.randn(2, 3, 64, 64)
    a, b = _head_logits(model.eval(), x), _head_logits(converted.eval(), x)
    torch.testing.assert_close(b[:, 1:], a[:, 1:], rtol=0, atol=0)
    # the background is IBE eq. 5, not the plain row
    torch.testing.assert_close(b[:, 0], -torch.logsumexp(a[:, 1:], 1))
    # the auxiliary head and backbone are copied as they are
    sd = converted.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith('decode_head.'):
            assert torch.equal(sd[k], v), k
    meta = torch.load(out, weights_only=True)['meta']
    assert meta['mmseg_ood_conversion']['to'] == to
    assert meta['dataset_meta']['classes'][1] == 'disk'


def test_relative_bias_keeps_the_plain_decision_up_to_eq5(plain, tmp_path):
    from mmseg_ood.apis import init_model
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    model, src = plain
    out = str(tmp_path / 'rel.pth')
    convert_checkpoint(src, 'ibe', out, bias='relative')
    converted = init_model(IBE, out)
    x = torch.randn(1, 3, 64, 64)
    a, b = _head_logits(model.eval(), x), _head_logits(converted.eval(), x)
    torch.testing.assert_close(b[:, 1:], a[:, 1:] - a[:, :1], rtol=1e-5,
                               atol=1e-5)


def test_round_trip_back_to_plain(plain, tmp_path):
    from mmseg_ood.apis import init_model
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    model, src = plain
    convert_checkpoint(src, 'ibe', str(tmp_path / 'ibe.pth'))
    convert_checkpoint(str(tmp_path / 'ibe.pth'), 'plain',
                       str(tmp_path / 'back.pth'), config=PLAIN)
    back = init_model(PLAIN, str(tmp_path / 'back.pth')).state_dict()
    for k, v in model.state_dict().items():
        if k.startswith('decode_head.conv_seg.'):   # background row: zero
            assert torch.equal(back[k][1:], v[1:]) and not back[k][0].any()
        else:
            assert torch.equal(back[k], v), k


def test_refusals(plain, tmp_path):
    from mmseg_ood.apis.convert_checkpoint import convert_checkpoint
    _, src = plain
    with pytest.raises(ValueError, match=r'must be an int in \[0, 6\)'):
        convert_checkpoint(src, 'ibe', str(tmp_path / 'x.pth'),
                           background_index=6)
    with pytest.raises(ValueError, match='plain head .* nothing to unwrap'):
        convert_checkpoint(src, 'plain', str(tmp_path / 'x.pth'))
    convert_checkpoint(src, 'ibe', str(tmp_path / 'ibe.pth'))
    with pytest.raises(ValueError, match='IBE / SCrIBE head already'):
        convert_checkpoint(str(tmp_path / 'ibe.pth'), 'scribe',
                           str(tmp_path / 'x.pth'))
    # a head without a 1x1 classifier (MaskFormer-like keys)
    torch.save({'state_dict': {
        'decode_head.transformer_decoder.w': torch.zeros(2),
        'backbone.conv.weight': torch.zeros(1)}}, str(tmp_path / 'm.pth'))
    with pytest.raises(ValueError, match='m.pth: no decode_head .* conv_seg'
                       r'.*transformer_decoder'):
        convert_checkpoint(str(tmp_path / 'm.pth'), 'ibe',
                           str(tmp_path / 'x.pth'))
    # converted for another number of classes: the check names both files
    with pytest.raises(ValueError, match='(?s)does not fit config .*classes'):
        convert_checkpoint(src, 'ibe', str(tmp_path / 'x.pth'), config=IBE,
                           cfg_options={'model.decode_head.head.num_classes':
                                        8})
    assert not osp.exists(tmp_path / 'x.pth')


def test_cli(plain, tmp_path):
    _, src = plain
    proc = run_tool('convert_checkpoint.py', src, '--to', 'scribe', '--out',
                    str(tmp_path / 's.pth'), '--config', SCRIBE)
    assert 'no missing or unexpected keys' in proc.stdout
    bad = run_tool('convert_checkpoint.py', src, '--to', 'ibe', '--out',
                   str(tmp_path / 'b.pth'), '--background-index', '9',
                   check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith('convert_checkpoint: error:')
    assert len(bad.stderr.strip().splitlines()) == 1
    assert 'background_index' in bad.stderr
