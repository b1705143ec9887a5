"""Chapter 19: float ranges, fp16 underflow, loss scaling vs torch.amp.GradScaler, master weights."""
import pytest
import torch

from lmcourse.errors import LMCourseError

from lmcourse.systems.precision import LossScaleError, LossScaler, MasterWeights, float_ranges, update_underflow


def test_float_ranges():
    r = float_ranges()
    assert r["float16"]["min_normal"] == pytest.approx(6.1035e-5, rel=1e-4)       # the notes' 6.1e-5
    assert r["float16"]["min_subnormal"] == pytest.approx(5.96e-8, rel=1e-3)
    assert r["float16"]["max"] == 65504 and r["float16"]["mantissa_bits"] == 10
    assert r["bfloat16"]["min_normal"] == torch.finfo(torch.float32).tiny
    assert torch.tensor(r["float16"]["min_subnormal"] / 2, dtype=torch.float16).item() == 0


def test_update_underflow():
    p = [torch.ones(4)]
    g = [torch.tensor([1e-2, 1e-6, 1e-9, 0.0])]
    out = update_underflow(p, g, lr=1e-3)
    assert out["n"] == 3 and out["underflow"] == pytest.approx(2 / 3) and out["no_change"] == 1.0
    with pytest.raises(LMCourseError, match="lr"):
        update_underflow(p, g, lr=0)


@pytest.mark.golden
@pytest.mark.parametrize("interval", [1, 3, 2000])
def test_scaler_matches_gradscaler(interval):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.ones(5))
    opt = torch.optim.SGD([p], lr=0.1)
    ref = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=interval)
    ours = LossScaler(init_scale=2.0 ** 10, growth_interval=interval)
    for i in range(20):
        g = torch.randn(5)
        if i in (2, 3, 4, 9):
            g[i % 5] = float("inf") if i != 9 else float("nan")
        opt.zero_grad()
        before = p.detach().clone()
        ref.scale((p * g).sum()).backward()
        ref.step(opt)
        ref.update()
        found = ours.unscale_([g * ours.scale])
        ours.update(found)
        assert torch.equal(before, p.detach()) == found, i
        assert ours.scale == ref.get_scale(), i
    assert ours.skipped == 4


def test_scale_zero_or_inf_is_an_error():
    with pytest.raises(LossScaleError, match="loss scale"):
        LossScaler(init_scale=0.0)
    s = LossScaler(init_scale=2.0 ** -1070)                  # tiny: a few overflows reach 0
    with pytest.raises(LossScaleError, match="loss scale became 0"):
        for _ in range(10):
            s.update(True)
    s = LossScaler(init_scale=2.0 ** 1020, growth_interval=1)
    with pytest.raises(LossScaleError, match="inf"):
        for _ in range(10):
            s.update(False)


def test_master_weights_skip_and_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1).half()
    mw = MasterWeights(model, lambda ps: torch.optim.SGD(ps, lr=0.1), LossScaler(init_scale=2.0 ** 20))
    x = torch.randn(8, 4).half()
    w0 = model.weight.detach().clone()
    assert not mw.step(model(x).float().pow(2).mean() * 100)   # 2^20 * big loss overflows fp16 grads: skipped
    assert torch.equal(model.weight, w0) and mw.scaler.scale == 2.0 ** 19
    for _ in range(12):
        if mw.step(model(x).float().pow(2).mean()):
            break
    assert not torch.equal(model.weight, w0)
    assert mw.master[0].dtype == torch.float32 and model.weight.dtype == torch.float16
