"""The streaming metrics fed tensors of any dtype the model may produce
(float32, float16, bfloat16 from mixed precision) and numpy arrays: the
same pixels give the same metrics, whatever container holds them."""
import numpy as np
import pytest
import torch

from mmseg_ood.evaluation import ECEAccumulator, PixelOODAccumulator
from mmseg_ood.evaluation.functional.inputs import to_numpy

KEYS = ('auroc', 'ap', 'fpr95')
HALF = [torch.bfloat16, torch.float16]


def images(n=3, shape=(32, 48), seed=0):
    """Score maps (float32 tensors, energies of -40 to -10: a range where
    half precision rounds to steps of 1/8 to 1/32) and 0/1/255 labels."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        y = (torch.rand(shape, generator=g) < 0.1).to(torch.uint8)
        y[torch.rand(shape, generator=g) < 0.05] = 255
        s = -25 + 5 * torch.randn(shape, generator=g) + 6 * (y == 1)
        out.append((s, y))
    return out


def metrics(pairs):
    m = PixelOODAccumulator()
    for s, y in pairs:
        m.update(s, y)
    return m.compute()


@pytest.mark.parametrize('dtype', HALF, ids=['bf16', 'fp16'])
def test_to_numpy_keeps_or_widens_half_precision(dtype):
    x = torch.tensor([1.5, -2.25, 1e-3], dtype=dtype)
    out = to_numpy(x)
    # float16 exists in numpy; bfloat16 does not and is widened exactly
    assert out.dtype == (np.float16 if dtype == torch.float16
                         else np.float32)
    np.testing.assert_array_equal(out.astype(np.float32),
                                  x.float().numpy())


@pytest.mark.parametrize('dtype', HALF, ids=['bf16', 'fp16'])
def test_half_precision_scores_give_the_metrics_of_their_values(dtype):
    """Fed half-precision tensors, the accumulator gives exactly the
    metrics of the same values in float32 (or as numpy arrays), and
    metrics within the rounding's reach of the unrounded scores."""
    data = images()
    half = [(s.to(dtype), y) for s, y in data]
    widened = [(s.float().numpy(), y.numpy()) for s, y in half]
    got, same, exact = metrics(half), metrics(widened), metrics(data)
    for k in KEYS:
        assert got[k] == same[k], k
        assert got[k] == pytest.approx(exact[k], abs=2e-2), k


def test_tensors_and_arrays_give_identical_metrics():
    data = images()
    as_numpy = [(s.numpy(), y.numpy()) for s, y in data]
    as_double = [(s.double(), y.long()) for s, y in data]
    ref = metrics(as_numpy)
    for pairs in (data, as_double):
        got = metrics(pairs)
        for k in KEYS:
            assert got[k] == ref[k], k


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_device_tensors_give_identical_metrics():
    data = images()
    on_gpu = [(s.cuda(), y.cuda()) for s, y in data]
    ref, got = metrics(data), metrics(on_gpu)
    for k in KEYS:
        assert got[k] == ref[k], k


@pytest.mark.parametrize('dtype', HALF, ids=['bf16', 'fp16'])
def test_ece_of_half_precision_probabilities(dtype):
    """ECE fed half-precision softmax probabilities equals ECE of the same
    values in float32."""
    g = torch.Generator().manual_seed(0)
    logits = 4 * torch.randn(5, 16, 24, generator=g)
    labels = torch.randint(0, 5, (16, 24), generator=g)
    probs = logits.softmax(0).to(dtype)
    got = ECEAccumulator().update(probs, labels).compute()
    ref = ECEAccumulator().update(probs.float(), labels).compute()
    assert got['ece'] == pytest.approx(ref['ece'], abs=1e-12)
    assert np.isfinite(got['ece'])
