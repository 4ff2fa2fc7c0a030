"""Optimizers step for step against torch.optim on the same gradients; state and errors."""

import numpy as np
import pytest

from convolve import Tensor, optim

SHAPES = [(3, 4), (5,), (2, 1, 3)]

CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.3)),
]


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def gradients(step, dtype):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_matches_torch_step_for_step(name, kwargs, dtype):
    torch = pytest.importorskip("torch")
    arrays = make_params(dtype)
    ours = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    theirs = [torch.from_numpy(a.copy()).requires_grad_(True) for a in arrays]
    opt = getattr(optim, name)(ours, **kwargs)
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for step in range(25):
        grads = gradients(step, dtype)
        opt.zero_grad()
        ref.zero_grad()
        for p, t, g in zip(ours, theirs, grads):
            p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
        if step == 7:  # a parameter without a gradient is left alone, as torch does
            ours[1].grad = theirs[1].grad = None
        opt.step()
        ref.step()
        for i, (p, t) in enumerate(zip(ours, theirs)):
            assert p.dtype == dtype
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=tol, atol=tol,
                                       err_msg=f"param {i} after step {step}")


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_state_dict_round_trip_resumes_identically(name, kwargs, tmp_path):
    def run(steps, opt, params):
        for step in steps:
            for p, g in zip(params, gradients(step, np.float64)):
                p.grad = g
            opt.step()

    a = [Tensor(x, requires_grad=True) for x in make_params(np.float64)]
    opt_a = getattr(optim, name)(a, **kwargs)
    run(range(10), opt_a, a)

    b = [Tensor(x, requires_grad=True) for x in make_params(np.float64)]
    opt_b = getattr(optim, name)(b, **kwargs)
    run(range(5), opt_b, b)
    np.savez(tmp_path / "opt.npz", **opt_b.state_dict())  # plain arrays and numbers
    saved = [p.data.copy() for p in b]
    c = [Tensor(x, requires_grad=True) for x in saved]
    opt_c = getattr(optim, name)(c, lr=123.0)
    with np.load(tmp_path / "opt.npz", allow_pickle=False) as f:
        opt_c.load_state_dict(dict(f))
    assert opt_c.lr == opt_b.lr
    run(range(5, 10), opt_c, c)
    for p, q in zip(a, c):
        np.testing.assert_array_equal(p.data, q.data)


def test_step_updates_in_place_and_zero_grad_clears():
    p = Tensor(np.ones(3), requires_grad=True)
    buffer = p.data
    opt = optim.SGD([p], lr=0.5)
    p.grad = np.ones(3)
    opt.step()
    assert p.data is buffer
    np.testing.assert_array_equal(p.data, [0.5, 0.5, 0.5])
    opt.zero_grad()
    assert p.grad is None


def test_lr_can_be_set_between_steps():
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    opt.lr = 0.25
    p.grad = np.ones(1)
    opt.step()
    np.testing.assert_array_equal(p.data, [-0.25])


@pytest.mark.parametrize(("schedule", "kwargs", "torch_name", "torch_kwargs"), [
    ("StepLR", dict(step_size=3, gamma=0.5), "StepLR", dict(step_size=3, gamma=0.5)),
    ("CosineAnnealingLR", dict(t_max=10, eta_min=0.01), "CosineAnnealingLR",
     dict(T_max=10, eta_min=0.01)),
])
def test_schedules_match_torch(schedule, kwargs, torch_name, torch_kwargs):
    torch = pytest.importorskip("torch")
    p = Tensor(np.zeros(1), requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    ours = getattr(optim, schedule)(opt, **kwargs)
    t = torch.zeros(1, requires_grad=True)
    ref_opt = torch.optim.SGD([t], lr=0.1)
    ref = getattr(torch.optim.lr_scheduler, torch_name)(ref_opt, **torch_kwargs)
    for _ in range(12):
        ref_opt.step()
        ref.step()
        assert ours.step() == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
        assert opt.lr == ours.lr_at(ours.epoch)


def test_schedule_state_round_trip():
    opt = optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    schedule = optim.StepLR(opt, 2)
    for _ in range(3):
        schedule.step()
    other_opt = optim.SGD([Tensor(np.zeros(1), requires_grad=True)], lr=0.1)
    other = optim.StepLR(other_opt, 2)
    other.load_state_dict(schedule.state_dict())
    assert other_opt.lr == opt.lr == pytest.approx(0.01)


def param():
    return Tensor(np.zeros(2), requires_grad=True)


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: optim.SGD([], lr=0.1), ValueError,
     r"params is empty: nothing to optimize \(build lazy layers first"),
    (lambda: optim.SGD(param(), lr=0.1), TypeError,
     r"params must be an iterable of Tensors such as model.parameters\(\); received Tensor"),
    (lambda: optim.SGD(5, lr=0.1), TypeError, "params must be an iterable of Tensors"),
    (lambda: optim.SGD([np.zeros(2)], lr=0.1), TypeError,
     r"params\[0\] must be a Tensor; received ndarray of shape \(2,\) and dtype float64"),
    (lambda: optim.SGD([p := param(), p], lr=0.1), ValueError,
     r"params\[1\] is the same Tensor as params\[0\]"),
    (lambda: optim.SGD([param()], lr=-1), ValueError,
     "lr must be a finite number >= 0; received -1"),
    (lambda: optim.SGD([param()], lr="big"), TypeError, "lr must be a real number; received 'big'"),
    (lambda: optim.SGD([param()], lr=0.1, momentum=-0.5), ValueError,
     "momentum must be a finite number >= 0; received -0.5"),
    (lambda: optim.SGD([param()], lr=0.1, nesterov=True), ValueError,
     "nesterov=True needs momentum > 0; received momentum=0"),
    (lambda: optim.SGD([param()], lr=0.1, weight_decay=-1), ValueError,
     "weight_decay must be a finite number >= 0"),
    (lambda: optim.Adam([param()], betas=(0.9,)), TypeError,
     r"betas must be a pair \(beta1, beta2\); received \(0.9,\)"),
    (lambda: optim.Adam([param()], betas=(1.0, 0.999)), ValueError,
     r"betas\[0\] must be < 1; received 1.0"),
    (lambda: optim.AdamW([param()], betas=(0.9, -0.1)), ValueError,
     r"betas\[1\] must be a number in \[0, 1\]; received -0.1"),
    (lambda: optim.Adam([param()], eps=-1e-8), ValueError, "eps must be a finite number >= 0"),
    (lambda: optim.StepLR(optim.SGD([param()], lr=1), 0), ValueError,
     "step_size must be >= 1; received 0"),
    (lambda: optim.StepLR("sgd", 1), TypeError, "optimizer must be an Optimizer; received 'sgd'"),
    (lambda: optim.CosineAnnealingLR(optim.SGD([param()], lr=1), 2.5), TypeError,
     "t_max must be an int; received 2.5"),
])
def test_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_lr_setter_refuses_negative():
    opt = optim.Adam([param()])
    with pytest.raises(ValueError, match=r"lr must be a finite number >= 0; received -0\.1"):
        opt.lr = -0.1


def test_passing_a_module_is_refused():
    from convolve import nn

    with pytest.raises(TypeError, match="params must be an iterable of Tensors such as "
                                        r"model.parameters\(\); received Dense"):
        optim.SGD(nn.Dense(2, in_features=3), lr=0.1)


@pytest.mark.parametrize(("state", "match"), [
    ({}, "Adam.load_state_dict: missing key 'lr'; missing key 'beta1'"),
    ({"bogus": 1}, "unexpected key 'bogus'"),
])
def test_load_state_dict_key_errors(state, match):
    opt = optim.Adam([param()])
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(state)


def test_load_state_dict_shape_error():
    opt = optim.Adam([param()])
    state = opt.state_dict()
    state["state.0.exp_avg"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"'state.0.exp_avg' has shape \(3,\) in the state but "
                                         r"\(2,\) for this optimizer's parameter"):
        opt.load_state_dict(state)
    with pytest.raises(TypeError, match="state must be a mapping; received"):
        opt.load_state_dict([1, 2])


def test_infinite_lr_is_refused():
    with pytest.raises(ValueError, match="lr must be a finite number >= 0; received inf"):
        optim.SGD([param()], lr=float("inf"))
