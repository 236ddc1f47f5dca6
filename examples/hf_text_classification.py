"""A Hugging Face classifier trained with torchfit, from a config: nothing is downloaded.

A tiny BERT learns a synthetic task (is token 7 in the sequence?) from a
`datasets.Dataset` of token ids and labels, on its own `labels` loss, then is
evaluated and predicts. Runs in seconds on a CPU. Needs `transformers` and
`datasets` (`pip install -e ".[test]"`).
"""

import datasets
import numpy as np
import transformers

import torchfit

torchfit.utils.set_random_seed(0)

VOCAB, LENGTH, ROWS = 30, 12, 512

# A learnable task: label 1 when token 7 is in the sequence, else 0.
rng = np.random.default_rng(0)
input_ids = rng.integers(8, VOCAB, size=(ROWS, LENGTH))
has_seven = rng.random(ROWS) < 0.5
input_ids[has_seven, rng.integers(0, LENGTH, size=has_seven.sum())] = 7
rows = datasets.Dataset.from_dict(
    {
        "input_ids": input_ids.tolist(),
        "attention_mask": np.ones_like(input_ids).tolist(),
        "label": has_seven.astype("int64").tolist(),
    }
)
train, test = rows.select(range(384)), rows.select(range(384, ROWS))

config = transformers.BertConfig(
    vocab_size=VOCAB,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    max_position_embeddings=LENGTH,
    num_labels=2,
)
model = torchfit.Model(transformers.BertForSequenceClassification(config))

# No loss: the `label` column reaches BERT as `labels`, and it trains on its own loss.
model.compile(optimizer=torchfit.optimizers.Adam(3e-3), metrics=["accuracy"])
model.fit(train, batch_size=32, epochs=5, validation_split=0.125, verbose=2)

print("test:", model.evaluate(test, batch_size=128, verbose=0, return_dict=True))
predictions = model.predict(test.remove_columns("label"), batch_size=128, verbose=0)
print("predicted classes of 8 test rows:", predictions["logits"][:8].argmax(-1))
print("true classes:                    ", np.array(test["label"][:8]))
