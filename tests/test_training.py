"""Small Sequential models learn toy tasks with each optimizer: the loss falls by half."""

import numpy as np
import pytest

from convolve import losses, nn, no_grad, optim


def bars(n, seed):
    """6x6 images holding one horizontal (class 0) or vertical (class 1) bar, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = rng.normal(0, 0.1, (n, 6, 6, 1)).astype(np.float32)
    for i, (label, pos) in enumerate(zip(labels, rng.integers(0, 6, n))):
        if label == 0:
            x[i, pos, :, 0] += 1
        else:
            x[i, :, pos, 0] += 1
    return x, labels


def train(model, make_optimizer, x, targets, loss_fn, steps, batch=16):
    opt = make_optimizer(model.parameters())
    history = []
    for step in range(steps):
        start = (step * batch) % len(x)
        opt.zero_grad()
        loss = loss_fn(model(x[start:start + batch]), targets[start:start + batch])
        loss.backward()
        opt.step()
        history.append(loss.item())
    return np.mean(history[:5]), np.mean(history[-5:])


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1),
    "sgd-momentum": lambda p: optim.SGD(p, lr=0.05, momentum=0.9),
    "sgd-nesterov": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                        weight_decay=1e-4),
    "adam": lambda p: optim.Adam(p, lr=0.01),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_conv_net_learns_bars(name):
    model = nn.Sequential([
        nn.Conv2D(4, 3, padding="same", activation="relu", seed=1),
        nn.BatchNorm2D(),
        nn.MaxPool2D(2),
        nn.Flatten(),
        nn.Dropout(0.1, seed=2),
        nn.Dense(2, seed=3),
    ])
    model.build((6, 6, 1))
    x, labels = bars(160, seed=0)
    first, last = train(model, OPTIMIZERS[name], x, labels, losses.cross_entropy, steps=60)
    assert last <= first / 2, (first, last)
    test_x, test_labels = bars(100, seed=1)
    model.eval()
    with no_grad():
        accuracy = np.mean(np.argmax(model(test_x).data, axis=1) == test_labels)
    assert accuracy >= 0.95


@pytest.mark.parametrize("name", ["sgd-momentum", "adam"])
def test_dense_net_fits_a_regression(name):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    y = (np.sin(2 * x[:, :1]) + x[:, 1:] ** 2).astype(np.float32)
    model = nn.Sequential([nn.Dense(32, activation="tanh", seed=0), nn.Dense(1, seed=1)])
    model.build((2,))
    first, last = train(model, OPTIMIZERS[name], x, y, losses.mse, steps=150, batch=32)
    assert last <= first / 2, (first, last)
