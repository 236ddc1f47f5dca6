"""Hugging Face models and datasets as a new user tries them (issue 14): tiny models
built from configs (nothing is downloaded), a `datasets.Dataset` straight into fit,
a torch.compile'd module saved and loaded into a plain one."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

import torchfit
from torchfit.utils.plot_model import model_to_dot

transformers = pytest.importorskip("transformers")

VOCAB, LENGTH = 50, 8


def tiny_bert(num_labels=3):
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=LENGTH,
        num_labels=num_labels,
    )
    return transformers.BertForSequenceClassification(config)


def tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=LENGTH, n_embd=16, n_layer=2, n_head=2
    )
    return transformers.GPT2LMHeadModel(config)


def token_data(n=32, seed=0):
    """Token ids whose label is which third of the vocabulary the first token is in."""
    ids = np.random.default_rng(seed).integers(1, VOCAB, size=(n, LENGTH)).astype("int64")
    return ids, (ids[:, 0] * 3 // VOCAB).astype("int64")


def test_bert_classifier_fits_a_bare_y_with_flat_metric_names():
    ids, y = token_data()
    model = torchfit.Model(tiny_bert(), device="cpu")
    model.compile(
        "adam",
        loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    before = model.get_weights()
    x = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    # Was: "The model has 1 outputs (['logits']) but `y` is a single Tensor".
    history = model.fit(x, y, batch_size=8, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    assert not np.allclose(before[0], model.get_weights()[0])
    predictions = model.predict(x, batch_size=8, verbose=0)
    assert type(predictions) is dict and list(predictions) == ["logits"]
    assert predictions["logits"].shape == (32, 3)
    # The key typo is caught against BertForSequenceClassification.forward's parameters.
    with pytest.raises(ValueError, match=r"\['attention_masks'\].*not parameters of forward"):
        model.predict({"input_ids": ids, "attention_masks": ids}, verbose=0)


def test_bert_trains_on_its_own_labels_loss_when_compile_has_none():
    ids, y = token_data()
    model = torchfit.Model(tiny_bert(), device="cpu")
    model.compile(torchfit.optimizers.Adam(1e-2))
    x = {"input_ids": ids, "labels": y}
    before = model.get_weights()
    history = model.fit(x, batch_size=8, verbose=0)
    assert list(history.history) == ["loss"]
    assert not np.allclose(before[0], model.get_weights()[0])
    # The logged loss is the model's own, averaged over the batches.
    model.module.eval()
    with torch.no_grad():
        expected = model.module(input_ids=torch.from_numpy(ids), labels=torch.from_numpy(y)).loss
    logs = model.evaluate(x, batch_size=32, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(expected.item(), rel=1e-5)


def test_gpt2_with_its_cache_trains_on_its_own_loss_and_predicts_logits_only():
    ids, _ = token_data(16)
    net = tiny_gpt2()
    assert net.config.use_cache  # the output holds a cache object beside the logits
    model = torchfit.Model(net, device="cpu")
    model.compile("adam")
    before = model.get_weights()
    history = model.fit({"input_ids": ids, "labels": ids}, batch_size=8, verbose=0)
    assert list(history.history) == ["loss"]
    assert not np.allclose(before[0], model.get_weights()[0])
    predictions = model.predict({"input_ids": ids}, batch_size=8, verbose=0)
    # Was: "has 2 outputs (['logits', 'past_key_values'])"; cache objects came back.
    assert type(predictions) is dict and list(predictions) == ["logits"]
    assert predictions["logits"].shape == (16, LENGTH, VOCAB)


def test_gpt2_takes_a_bare_y_for_its_logits_with_a_compiled_loss():
    ids, _ = token_data(16)
    model = torchfit.Model(tiny_gpt2(), device="cpu")
    model.compile("sgd", loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    logs = model.evaluate({"input_ids": ids}, ids, batch_size=16, verbose=0, return_dict=True)
    model.module.eval()  # no dropout, as in evaluate
    with torch.no_grad():
        logits = model.module(input_ids=torch.from_numpy(ids)).logits
    expected = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), torch.from_numpy(ids).ravel())
    assert logs["loss"] == pytest.approx(expected.item(), rel=1e-5)


# -------------------------------------------------------------- datasets.Dataset
def _rows(n=40):
    datasets = pytest.importorskip("datasets")
    ids, y = token_data(n)
    return datasets.Dataset.from_dict(
        {
            "text": [f"row {i}" for i in range(n)],
            "input_ids": ids.tolist(),
            "attention_mask": np.ones_like(ids).tolist(),
            "label": y.tolist(),
        }
    )


def test_a_datasets_dataset_goes_straight_into_fit_evaluate_and_predict():
    ds = _rows(40)
    model = torchfit.Model(tiny_bert(), device="cpu")
    model.compile(torchfit.optimizers.Adam(1e-2), metrics=["accuracy"])
    seen = []

    class Batches(torchfit.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(batch)

    # `label` reaches BERT as `labels`: it trains on its own loss; `text` is not used.
    history = model.fit(
        ds, batch_size=16, epochs=1, validation_split=0.25, verbose=0, callbacks=[Batches()]
    )
    assert seen == [0, 1]  # 30 training rows in batches of 16, not 30 rows one by one
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    logs = model.evaluate(ds, batch_size=40, verbose=0, return_dict=True)
    ids = torch.tensor(ds["input_ids"])
    model.module.eval()
    with torch.no_grad():
        out = model.module(input_ids=ids, labels=torch.tensor(ds["label"]))
    assert logs["loss"] == pytest.approx(out.loss.item(), rel=1e-5)
    predictions = model.predict(ds.remove_columns("label"), batch_size=16, verbose=0)
    np.testing.assert_allclose(predictions["logits"], out.logits.numpy(), rtol=1e-4, atol=1e-6)


def test_a_dataloader_with_batch_size_warns_that_it_is_ignored():
    ids, y = token_data(8)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(ids), torch.from_numpy(y)), batch_size=4
    )
    model = torchfit.Model(tiny_bert(), device="cpu")
    model.compile("sgd", loss=torchfit.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(UserWarning, match=r"`batch_size=32` was passed, but will be ignored"):
        model.evaluate(loader, batch_size=32, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.evaluate(loader, verbose=0)


# ------------------------------------------------------------------ torch.compile
def test_a_compiled_module_is_trained_saved_and_loaded_into_a_plain_one(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model = torchfit.Model(torch.compile(net, backend="eager"), device="cpu")
    model.compile("adam", "mse")
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    model.fit(x, x[:, :2], batch_size=8, verbose=0)
    model.save_weights(tmp_path / "w.pt")
    model.save(tmp_path / "m.pt")
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert sorted(state) == sorted(net.state_dict())  # no `_orig_mod.` prefix
    plain = torchfit.Model(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    plain.load_weights(tmp_path / "w.pt")
    expected = net(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(plain.predict(x, verbose=0), expected, rtol=1e-6)
    # Was: "OptimizedModule, not a torch.nn layer".
    loaded = torchfit.models.load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6)
    # The summary lists the compiled module's layers, as the plain module's.
    assert "Linear" in _layers(model) and _layers(model) == _layers(plain)
    dot = model_to_dot
    assert "(Linear)" in dot(model, inputs=(4,)) and dot(model, inputs=(4,)) == dot(
        plain, inputs=(4,)
    )


def _layers(model):
    lines = []
    model.summary(print_fn=lines.append)
    return "\n".join(lines).split(" Total params")[0]
