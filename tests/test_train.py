"""fit / evaluate / predict, early stopping, checkpoints and resume, and `convolve train`."""

import json

import numpy as np
import pytest

from convolve import checkpoint, nn, optim, train
from convolve.cli import main


def blobs(n=96, seed=0):
    """Two classes of 6x6x1 images: bright top half or bright bottom half, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.normal(0, 0.3, (n, 6, 6, 1)).astype(np.float32)
    images[labels == 0, :3] += 1
    images[labels == 1, 3:] += 1
    return images, labels.astype(np.int64)


def small_model(seed=0, dropout=True):
    layers = [nn.Conv2D(4, 3, activation="relu", seed=seed), nn.MaxPool2D(2), nn.Flatten()]
    if dropout:
        layers.append(nn.Dropout(0.2, seed=seed + 1))
    layers.append(nn.Dense(2, seed=seed + 2))
    model = nn.Sequential(layers)
    model.build((6, 6, 1))
    return model


def test_fit_learns_and_reports_history():
    data = blobs()
    model = small_model()
    history = train.fit(model, data, epochs=4, batch_size=16, lr=0.01,
                         validation_data=blobs(32, seed=1), verbose=False)
    assert history.epochs == 4
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds",
                "images_per_second"):
        assert len(history[key]) == 4
    assert history["loss"][-1] < history["loss"][0] / 2
    assert train.evaluate(model, blobs(64, seed=2))["accuracy"] >= 0.9


def test_predict_and_evaluate_restore_the_mode():
    model = small_model()
    model.train()
    images, labels = blobs(10)
    out = train.predict(model, images, batch_size=3)
    assert out.shape == (10, 2) and model.training
    train.evaluate(model, (images, labels), batch_size=4)
    assert model.training


@pytest.mark.parametrize("suffix", ["npz", "safetensors"])
def test_resumed_run_ends_with_the_same_weights(tmp_path, suffix):
    """Stop after epoch 2, resume to 4: identical to an uninterrupted run of 4 (dropout
    masks, data order, Adam's moments and the schedule included)."""
    data = blobs()
    settings = dict(batch_size=16, lr=0.01, lr_schedule="cosine", verbose=False)
    straight = small_model()
    train.fit(straight, data, epochs=4, **settings)

    path = tmp_path / f"run.{suffix}"

    def crash_after_second_epoch(epoch, logs):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(small_model(), data, epochs=4, checkpoint_path=path,
                  callbacks=[crash_after_second_epoch], **settings)
    resumed = small_model(seed=123)  # other initial weights and dropout seed: all restored
    history = train.fit(resumed, data, epochs=4, checkpoint_path=path, resume=True, **settings)
    assert history.epochs == 4
    for (name, a), (_, b) in zip(straight.state_dict().items(),
                                 resumed.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_checkpoint_is_written_after_every_epoch(tmp_path):
    path = tmp_path / "ckpt.npz"
    epochs_seen = []
    train.fit(small_model(), blobs(), epochs=2, checkpoint_path=path, verbose=False,
              callbacks=[lambda epoch, logs: epochs_seen.append(epoch)])
    arrays, meta = checkpoint.load(path)
    assert meta["epoch"] == 2 and epochs_seen == [0, 1]
    assert any(k.startswith("model.") for k in arrays)
    assert any(k.startswith("optimizer.") for k in arrays)


def test_resume_refuses_a_mismatched_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    train.fit(small_model(), blobs(), epochs=1, checkpoint_path=path, verbose=False)
    other = nn.Sequential([nn.Flatten(), nn.Dense(2, seed=0)])
    other.build((6, 6, 1))
    with pytest.raises(checkpoint.CheckpointError, match="does not match this model"):
        train.fit(other, blobs(), epochs=2, checkpoint_path=path, resume=True, verbose=False)


def test_resume_refuses_a_corrupt_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(checkpoint.CheckpointError, match="is damaged"):
        train.fit(small_model(), blobs(), epochs=1, checkpoint_path=path, resume=True,
                  verbose=False)


def test_resume_refuses_a_plain_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, {"w": np.ones(2)}, {})
    with pytest.raises(checkpoint.CheckpointError, match="is not a training checkpoint"):
        train.fit(small_model(), blobs(), epochs=1, checkpoint_path=path, resume=True,
                  verbose=False)


def test_non_finite_loss_stops_with_epoch_and_step():
    images, labels = blobs()
    images[40] = np.nan
    with pytest.raises(train.NonFiniteLossError,
                       match=r"the loss became nan at epoch 1, step \d+; try a lower "
                             r"learning rate \(now 0\.01\)"):
        train.fit(small_model(), (images, labels), epochs=1, batch_size=16, lr=0.01,
                  verbose=False)


def test_early_stopping_stops_and_restores_best():
    model = small_model()
    stopper = train.EarlyStopping("val_loss", patience=1, restore_best_weights=True)
    # lr 0 never improves the validation loss: stop after the second epoch
    history = train.fit(model, blobs(), epochs=10, optimizer=optim.SGD(model.parameters(),
                        lr=0.0), early_stopping=stopper, validation_data=blobs(16, 3),
                        verbose=False)
    assert history.epochs == 2


def test_early_stopping_needs_its_key():
    stopper = train.EarlyStopping("val_loss")
    with pytest.raises(ValueError, match="EarlyStopping monitors 'val_loss', which the "
                                         "epoch's logs lack; available: accuracy, "):
        train.fit(small_model(), blobs(), epochs=1, early_stopping=stopper, verbose=False)


def test_bad_arguments():
    model = small_model()
    with pytest.raises(TypeError, match="train_data must be"):
        train.fit(model, np.zeros((3, 6, 6, 1)), verbose=False)
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adam', 'adamw'; "
                                         "received 'rmsprop'"):
        train.fit(model, blobs(), optimizer="rmsprop", verbose=False)
    with pytest.raises(ValueError, match="loss must be one of"):
        train.fit(model, blobs(), loss="hinge", verbose=False)


def test_predict_refuses_an_empty_batch_and_a_bad_batch_size():
    model = small_model()
    with pytest.raises(ValueError, match=r"^images must be a batch \(N, \.\.\.\) with N >= 1; "
                                         r"received an array of shape \(0, 6, 6, 1\)$"):
        train.predict(model, np.zeros((0, 6, 6, 1), np.float32))
    with pytest.raises(ValueError, match=r"^batch_size must be >= 1; received 0$"):
        train.predict(model, blobs()[0], batch_size=0)


def test_a_bad_checkpoint_path_is_refused_before_training():
    model = small_model()
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"^checkpoint path must end in \.safetensors or "
                                         r"\.npz; received 'run\.ckpt'$"):
        train.fit(model, blobs(), checkpoint_path="run.ckpt", verbose=False)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_cli_train_json(capsys, monkeypatch):
    """The command end to end on a tiny 28x28 stand-in for the embedded set."""
    from convolve import data

    images, labels = blobs(64)
    images = np.kron(images, np.ones((1, 5, 5, 1), np.float32))[:, 1:29, 1:29]
    tiny = data.Dataset("tiny", data.Split(images, labels),
                        data.Split(images[:16], labels[:16]), ("top", "bottom"))
    monkeypatch.setattr(data, "embedded_mnist", lambda: tiny)
    assert main(["train", "--epochs", "2", "--json"]) == 0
    out = capsys.readouterr().out
    assert "Total params" in out and "test accuracy" in out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["epochs"] == 2 and result["model"] == "digits_cnn"
    assert 0 <= result["test_accuracy"] <= 1
    assert result["seconds"] > 0 and result["images_per_second"] > 0


def test_cli_train_errors(capsys, tmp_path):
    assert main(["train", "--resume"]) == 2
    assert capsys.readouterr().err == "convolve train: error: --resume needs --checkpoint PATH\n"
    assert main(["train", "--epochs", "0"]) == 2
    assert capsys.readouterr().err == "convolve train: error: --epochs must be >= 1; received 0\n"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "download" in err and "Traceback" not in err
