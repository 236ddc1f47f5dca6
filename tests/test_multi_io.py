"""Multi-input, multi-output models through compile/fit/evaluate/predict:
input routing, per-output losses, weights, metrics, log names and errors."""

import numpy as np
import pytest
import torch
from torch import nn

import torchfit

N = 12


class TwoHeads(nn.Module):
    """Two inputs `a` (N, 3) and `b` (N, 2).

    Outputs a score (N, 1) and class probabilities (N, 3).
    """

    def __init__(self, as_dict=False):
        super().__init__()
        self.trunk = nn.Linear(5, 4)
        self.score = nn.Linear(4, 1)
        self.klass = nn.Linear(4, 3)
        self.as_dict = as_dict

    def forward(self, a, b):
        hidden = torch.relu(self.trunk(torch.cat([a, b], dim=1)))
        score, probs = self.score(hidden), torch.softmax(self.klass(hidden), dim=1)
        return {"score": score, "probs": probs} if self.as_dict else (score, probs)


def data(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((N, 3)).astype("float32")
    b = rng.random((N, 2)).astype("float32")
    score = rng.random((N, 1)).astype("float32")
    labels = rng.integers(0, 3, N)
    onehot = np.eye(3, dtype="float32")[labels]
    return [a, b], [score, onehot]


def make(names=("score", "probs"), as_dict=False, **compile_args):
    torch.manual_seed(0)
    model = torchfit.Model(
        TwoHeads(as_dict),
        output_names=None if as_dict else list(names) if names else None,
        device="cpu",
    )
    compile_args.setdefault("optimizer", torchfit.optimizers.SGD(0.1))
    model.compile(**compile_args)
    return model


def reference(model, x):
    with torch.no_grad():
        outputs = model.module(*(torch.as_tensor(part) for part in x))
    return tuple(outputs.values()) if isinstance(outputs, dict) else outputs


def mse(y, p):
    return float(((torch.as_tensor(y) - p) ** 2).mean())


def cce(y, p):
    p = p / p.sum(dim=1, keepdim=True)
    return float(-(torch.as_tensor(y) * torch.log(p.clamp(1e-7, 1 - 1e-7))).sum(dim=1).mean())


# ------------------------------------------------------------------- inputs


def test_list_and_dict_inputs_reach_forward_the_same_way():
    model = make(loss=["mse", "categorical_crossentropy"])
    x, y = data()
    from_list = model.evaluate(x, y, verbose=0, return_dict=True)
    from_dict = model.evaluate(
        {"a": x[0], "b": x[1]}, {"score": y[0], "probs": y[1]}, verbose=0, return_dict=True
    )
    assert from_list == pytest.approx(from_dict)


def test_unknown_input_key_names_the_forward_parameters():
    model = make(loss="mse")
    x, y = data()
    with pytest.raises(ValueError, match=r"\['a', 'b'\]"):
        model.predict({"a": x[0], "bee": x[1]}, verbose=0)


# ------------------------------------------------------------------- losses


def test_single_loss_is_broadcast_and_logged_per_output():
    model = make(loss="mse")
    x, y = data()
    logs = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    score, probs = reference(model, x)
    assert sorted(logs) == ["loss", "probs_loss", "score_loss"]
    assert logs["score_loss"] == pytest.approx(mse(y[0], score), rel=1e-5)
    assert logs["probs_loss"] == pytest.approx(mse(y[1], probs), rel=1e-5)
    assert logs["loss"] == pytest.approx(logs["score_loss"] + logs["probs_loss"], rel=1e-5)


@pytest.mark.parametrize("loss_weights", [[2.0, 0.5], {"score": 2.0, "probs": 0.5}])
def test_loss_weights_weigh_the_total_but_not_the_per_output_logs(loss_weights):
    model = make(
        loss={"score": "mse", "probs": "categorical_crossentropy"}, loss_weights=loss_weights
    )
    x, y = data()
    logs = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    score, probs = reference(model, x)
    assert logs["score_loss"] == pytest.approx(mse(y[0], score), rel=1e-5)
    assert logs["probs_loss"] == pytest.approx(cce(y[1], probs), rel=1e-5)
    assert logs["loss"] == pytest.approx(
        2.0 * logs["score_loss"] + 0.5 * logs["probs_loss"], rel=1e-5
    )


@pytest.mark.parametrize(
    "loss", [[None, "categorical_crossentropy"], {"probs": "categorical_crossentropy"}]
)
def test_output_without_loss_is_predicted_but_not_trained(loss):
    model = make(loss=loss)
    x, y = data()
    score_before = model.module.score.weight.detach().clone()
    klass_before = model.module.klass.weight.detach().clone()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert sorted(history.history) == ["loss"]  # one loss: no per-output keys
    assert torch.equal(model.module.score.weight, score_before)
    assert not torch.equal(model.module.klass.weight, klass_before)
    # Its target may be left out altogether.
    model.fit(x, [None, y[1]], batch_size=4, verbose=0)
    model.fit(x, {"probs": y[1]}, batch_size=4, verbose=0)
    predictions = model.predict(x, verbose=0)
    assert [p.shape for p in predictions] == [(N, 1), (N, 3)]


def test_missing_target_of_a_trained_output_is_a_clear_error():
    model = make(loss=["mse", "mse"])
    x, y = data()
    with pytest.raises(ValueError, match="probs"):
        model.fit(x, [y[0], None], verbose=0)


@pytest.mark.parametrize(
    "loss, match",
    [
        (["mse"] * 3, "3 entries"),
        ({"score": "mse", "scroe": "mse"}, "scroe"),
    ],
)
def test_bad_loss_structure_is_a_clear_error(loss, match):
    model = make(loss=loss)
    x, y = data()
    with pytest.raises(ValueError, match=match):
        model.fit(x, y, verbose=0)


def test_output_names_must_match_the_number_of_outputs():
    model = make(names=("only_one",), loss="mse")
    x, y = data()
    with pytest.raises(ValueError, match="output_names"):
        model.fit(x, y, verbose=0)


def test_unnamed_tuple_outputs_are_output_1_and_output_2():
    model = make(names=None, loss="mse", metrics=[["mae"], ["mae"]])
    x, y = data()
    history = model.fit(x, y, verbose=0, validation_data=(x, y))
    assert sorted(history.history) == [
        "loss",
        "output_1_loss",
        "output_1_mae",
        "output_2_loss",
        "output_2_mae",
        "val_loss",
        "val_output_1_loss",
        "val_output_1_mae",
        "val_output_2_loss",
        "val_output_2_mae",
    ]


def test_dict_outputs_are_named_by_their_keys_and_predicted_as_a_dict():
    model = make(
        as_dict=True,
        loss={"score": "mse", "probs": "categorical_crossentropy"},
        metrics={"probs": ["categorical_accuracy"]},
    )
    x, y = data()
    history = model.fit({"a": x[0], "b": x[1]}, {"score": y[0], "probs": y[1]}, verbose=0)
    assert sorted(history.history) == [
        "loss",
        "probs_categorical_accuracy",
        "probs_loss",
        "score_loss",
    ]
    predictions = model.predict(x, verbose=0)
    assert isinstance(predictions, dict) and list(predictions) == ["score", "probs"]
    assert predictions["probs"].shape == (N, 3) and isinstance(predictions["score"], np.ndarray)


# ------------------------------------------------------------------ metrics


def test_metric_names_duplicates_and_weighted_collisions():
    model = make(
        loss=["mse", "categorical_crossentropy"],
        metrics=[["mae", "mae", torchfit.metrics.MeanSquaredError()], ["acc"]],
        weighted_metrics=[["mae"], ["acc"]],
    )
    x, y = data()
    history = model.fit(x, y, verbose=0, validation_data=(x, y))
    train_keys = [
        "loss",
        "probs_acc",
        "probs_loss",
        "probs_weighted_acc",
        "score_loss",
        "score_mae",
        "score_mae_1",
        "score_mean_squared_error",
        "score_weighted_mae",
    ]
    assert list(history.history) == sorted(train_keys + ["val_" + key for key in train_keys])
    assert sorted(model.metrics_names) == train_keys


def test_flat_metric_list_with_one_entry_per_output():
    model = make(loss="mse", metrics=["mae", "mse"])
    x, y = data()
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(logs) == ["loss", "probs_loss", "probs_mse", "score_loss", "score_mae"]
    score, probs = reference(model, x)
    assert logs["probs_mse"] == pytest.approx(mse(y[1], probs), rel=1e-5)
    assert logs["score_mae"] == pytest.approx(
        float((torch.as_tensor(y[0]) - score).abs().mean()), rel=1e-5
    )


def test_evaluate_list_order_is_keras_3s():
    model = make(
        loss=["mse", "categorical_crossentropy"], metrics=[["mse", "mae"], ["categorical_accuracy"]]
    )
    x, y = data()
    values = model.evaluate(x, y, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    order = [
        "loss",
        "score_loss",
        "probs_loss",
        "probs_categorical_accuracy",
        "score_mae",
        "score_mse",
    ]
    assert values == pytest.approx([logs[name] for name in order])


# ----------------------------------------------------------- sample weights


def test_one_sample_weight_array_is_broadcast_to_every_output():
    model = make(loss=["mse", "mse"], weighted_metrics=[["mse"], []])
    x, y = data()
    weights = np.linspace(0.0, 2.0, N).astype("float32")
    logs = model.evaluate(x, y, sample_weight=weights, batch_size=N, verbose=0, return_dict=True)
    score, probs = reference(model, x)
    w = torch.as_tensor(weights)
    assert logs["score_loss"] == pytest.approx(
        float(((torch.as_tensor(y[0]) - score) ** 2).mean(1).mul(w).mean()), rel=1e-5
    )
    assert logs["probs_loss"] == pytest.approx(
        float(((torch.as_tensor(y[1]) - probs) ** 2).mean(1).mul(w).mean()), rel=1e-5
    )
    per_sample = ((torch.as_tensor(y[0]) - score) ** 2).mean(1)
    assert logs["score_mse"] == pytest.approx(float((per_sample * w).sum() / w.sum()), rel=1e-5)


@pytest.mark.parametrize("as_dict", [False, True])
def test_sample_weight_per_output(as_dict):
    model = make(loss=["mse", "mse"])
    x, y = data()
    weights = np.linspace(0.0, 2.0, N).astype("float32")
    ones = np.ones(N, "float32")
    sample_weight = {"score": weights, "probs": ones} if as_dict else [weights, ones]
    targets = {"score": y[0], "probs": y[1]} if as_dict else y
    weighted = model.evaluate(
        x, targets, sample_weight=sample_weight, batch_size=N, verbose=0, return_dict=True
    )
    plain = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    assert weighted["probs_loss"] == pytest.approx(plain["probs_loss"], rel=1e-6)
    assert weighted["score_loss"] != pytest.approx(plain["score_loss"], rel=1e-3)
    assert weighted["loss"] == pytest.approx(
        weighted["score_loss"] + weighted["probs_loss"], rel=1e-5
    )


def test_class_weight_with_several_outputs_is_a_clear_error():
    model = make(loss=["mse", "categorical_crossentropy"])
    x, y = data()
    with pytest.raises(ValueError, match="class_weight"):
        model.fit(x, y, class_weight={0: 1.0, 1: 2.0, 2: 1.0}, verbose=0)


# ------------------------------------------------------------- data kinds


def test_fit_on_a_dataloader_of_dict_tuples():
    class Pairs(torch.utils.data.Dataset):
        def __init__(self, x, y):
            self.x, self.y = x, y

        def __len__(self):
            return N

        def __getitem__(self, index):
            return (
                {"a": self.x[0][index], "b": self.x[1][index]},
                {"score": self.y[0][index], "probs": self.y[1][index]},
            )

    x, y = data()
    model = make(loss={"score": "mse", "probs": "categorical_crossentropy"})
    loader = torch.utils.data.DataLoader(Pairs(x, y), batch_size=N)
    from_loader = model.evaluate(loader, verbose=0, return_dict=True)
    from_arrays = model.evaluate(x, y, batch_size=N, verbose=0, return_dict=True)
    assert from_loader == pytest.approx(from_arrays)
    history = model.fit(Pairs(x, y), batch_size=4, epochs=2, verbose=0)
    assert sorted(history.history) == ["loss", "probs_loss", "score_loss"]


def test_predict_matches_the_module_output_structure():
    model = make(loss="mse")
    x, _ = data()
    predictions = model.predict(x, batch_size=5, verbose=0)
    score, probs = reference(model, x)
    assert isinstance(predictions, list) and len(predictions) == 2
    np.testing.assert_allclose(predictions[0], score.numpy(), rtol=1e-6)
    np.testing.assert_allclose(predictions[1], probs.numpy(), rtol=1e-6)
    on_batch = model.predict_on_batch(x)
    np.testing.assert_allclose(on_batch[1], probs.numpy(), rtol=1e-6)
