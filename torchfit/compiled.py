"""Applies the losses and metrics given to `compile()` to a model's outputs.

Owns the mapping from `compile(loss=..., loss_weights=..., metrics=...,
weighted_metrics=...)` onto the model's outputs, Keras 3's log names for them
(`loss`, `<output>_loss`, `<output>_<metric>`, `_1` for duplicates,
`weighted_` for collisions), the resolution of `"accuracy"` and
`"crossentropy"` from the shapes of the first batch, and checking each
output's targets against what its loss needs (shapes at every call; class
indices on host copies the data adapters hand over). The numbers, and the
target rules, belong to `losses/` and `metrics/`; the step that calls these
belongs to `models/model.py`.
"""

import copy
from collections.abc import Mapping
from typing import Any, Optional

import torch

from torchfit import losses as losses_module
from torchfit import metrics as metrics_module
from torchfit import tree
from torchfit.losses import targets as targets_module
from torchfit.outputs import Outputs, describe_entries, outputs_structure

__all__ = ["CompileLoss", "CompileMetrics", "Outputs", "UnbuiltMetrics", "outputs_structure"]

_SHAPE_RESOLVED = ("accuracy", "acc", "crossentropy", "ce")


def _per_output(config: Any, outputs: Outputs, argument: str) -> list:
    """Spreads a compile argument (one value, list or dict) over the outputs."""
    if outputs.count == 1 and not outputs.spans_every_entry(config):
        if isinstance(config, Mapping):
            config = outputs.without_others(config, argument)
            _check_single_output_keys(config, outputs, argument)
            return list(config.values())
        if isinstance(config, (list, tuple)) and len(config) == 1 and argument == "loss":
            return [config[0]]
        return [config]
    return outputs.match(config, argument, broadcast=True)


def _check_has_outputs(outputs: Outputs, y_pred: Any, argument: str) -> None:
    """Raises when `compile()` gave `argument` but the model returns no tensor to apply it to."""
    if outputs.count:
        return
    own = (
        " Compile without a loss to train on the model's own `loss`."
        if outputs.has_own_loss and argument == "loss"
        else ""
    )
    raise ValueError(
        f"`{argument}` was given to compile(), but the model's output holds no tensor to"
        f" apply it to: {describe_entries(y_pred)}. Only tensors are outputs, and"
        f" `loss` is the model's own loss.{own}"
    )


def _check_single_output_keys(config: Mapping, outputs: Outputs, argument: str) -> None:
    """A dict for one output must be keyed by that output's name, as Keras requires."""
    if len(config) == 1 and set(config) <= set(outputs.names):
        return
    raise ValueError(
        f"`{argument}` is a dict with keys {list(config)}, but the model has a single"
        f" output, named {outputs.names[0]!r}. Key the dict by {outputs.names[0]!r},"
        " pass the value alone, or name the output with"
        " `torchfit.Model(module, output_names=[...])`."
    )


def _check_string_ids(config: Any, resolve, skip: tuple) -> None:
    """Resolves every string id in a compile argument once, so a typo fails at
    `compile()` (with the closest valid ids) rather than at the first batch."""
    for leaf in tree.flatten(config):
        if isinstance(leaf, str) and leaf.lower() not in skip:
            resolve(leaf)


def _num_classes(rule: Any, y_pred: Any) -> Optional[int]:
    """The length of the class axis a `ClassIndices` rule indexes, or `None`."""
    shape = tuple(getattr(y_pred, "shape", ()))
    if not isinstance(rule, targets_module.ClassIndices) or not shape:
        return None
    if not -len(shape) <= rule.axis < len(shape):
        return None
    return int(shape[rule.axis])


class _TargetCheck:
    """Checks one output's targets against what its loss (or metric) needs.

    Shapes are host metadata: they are checked at every call, and compared
    again only when they change. Values are checked only when a data adapter
    hands over host copies (`values`), so no check waits for the device.
    """

    __slots__ = ("index", "name", "outputs", "rule", "consumer", "num_classes", "_checked")

    def __init__(self, index: int, outputs: "Outputs", rule: Any, consumer: str, y_pred: Any):
        self.index = index
        self.name = outputs.names[index]
        self.outputs = outputs
        self.rule = rule
        self.consumer = consumer
        self.num_classes = _num_classes(rule, y_pred)
        self._checked = None  # the (target, prediction) shapes last found fitting

    def shapes(self, y_true: Any, y_pred: Any) -> None:
        """Raises when `y_true` is missing or cannot be `y_pred`'s target."""
        if y_true is None:
            _raise_missing_target(self.name, self.outputs)
        if self.rule is None:
            return
        shapes = (getattr(y_true, "shape", None), getattr(y_pred, "shape", None))
        if shapes == self._checked:
            return
        problem = targets_module.shape_problem(self.rule, y_true, y_pred)
        if problem is not None:
            raise ValueError(
                f"The target `y` of output {self.name!r} does not fit its prediction"
                f" under `{self.consumer}`: {problem}. Pass targets shaped like the"
                " output (a (N,) target for a (N, 1) output is fine)"
                f"{self._order_hint()}."
            )
        self._checked = shapes

    def values(self, y_true: Any, where: str) -> None:
        """Raises when the host array `y_true` holds labels that are no class index."""
        if self.num_classes is None or y_true is None:
            return
        problem = targets_module.class_index_problem(y_true, self.num_classes, self.rule)
        if problem is None:
            return
        ignored = self.rule.ignore_class
        allowed = f" (or {ignored}, the ignored class)" if ignored is not None else ""
        raise ValueError(
            f"The targets of output {self.name!r} {where} are not class indices for"
            f" `{self.consumer}`, which sees {self.num_classes} classes in the"
            f" prediction: {problem}. Pass integer labels from 0 to"
            f" {self.num_classes - 1}{allowed}; one-hot targets go with"
            f" `categorical_crossentropy`{self._order_hint()}."
        )

    def _order_hint(self) -> str:
        if self.outputs.count == 1:
            return ""
        return f"; with several outputs, give `y` in the order of the outputs {self.outputs.names}"


def _raise_missing_target(name: str, outputs: "Outputs") -> None:
    where = "" if outputs.count == 1 else f" for output `{name}`"
    raise ValueError(
        f"A loss was compiled{where} but no target `y` was given. Pass `y` to"
        " fit/evaluate (or yield `(x, y)` batches), or compile without a loss"
        " when the model adds its own with `add_loss`."
    )


def _check_values(checks: list, outputs: Optional["Outputs"], y: Any, where: str) -> None:
    """Runs the value checks of `checks` on the host targets `y`."""
    checks = [check for check in checks if check.num_classes is not None]
    if not checks or y is None:
        return
    flat_true = outputs.match(y, "y")
    for check in checks:
        check.values(flat_true[check.index], where)


class CompileLoss:
    """The weighted sum of the compiled losses over the model's outputs.

    Built on the first batch, when the outputs' structure and shapes are
    known. With more than one loss it keeps a `<output>_loss` tracker per
    output, logged before weighting, as Keras 3 does. Before each loss runs,
    its target is checked against the prediction (`Loss.target_rule`).
    """

    def __init__(self, loss: Any, loss_weights: Any = None, output_names=None):
        _check_string_ids(loss, losses_module.get, skip=("crossentropy", "ce"))
        self._loss_config = loss
        self._weights_config = loss_weights
        self._output_names = output_names
        self.built = False
        self.outputs: Optional[Outputs] = None
        self.metrics: list = []
        self._terms: list = []  # (index, loss_fn, weight, tracker, target check)

    def build(self, y_true: Any, y_pred: Any, device: torch.device) -> None:
        self.outputs = Outputs(y_pred, self._output_names)
        _check_has_outputs(self.outputs, y_pred, "loss")
        flat_pred = self.outputs.flatten(y_pred)
        flat_true = self.outputs.match(y_true, "y")
        configs = _per_output(self._loss_config, self.outputs, "loss")
        weights = (
            [1.0] * self.outputs.count
            if self._weights_config is None
            else _per_output(self._weights_config, self.outputs, "loss_weights")
        )
        terms = []
        for index, config in enumerate(configs):
            if config is None:
                continue
            if isinstance(config, str) and config in ("crossentropy", "ce"):
                loss_fn = losses_module.resolve_crossentropy(flat_true[index], flat_pred[index])
            else:
                loss_fn = losses_module.get(config)
            weight = 1.0 if weights[index] is None else float(weights[index])
            check = _TargetCheck(
                index, self.outputs, loss_fn.target_rule, loss_fn.name, flat_pred[index]
            )
            terms.append([index, loss_fn, weight, None, check])
        if len(terms) > 1:
            for term in terms:
                name = f"{self.outputs.names[term[0]]}_loss"
                term[3] = metrics_module.Mean(name=name).to(device)
                self.metrics.append(term[3])
        self._terms = [tuple(term) for term in terms]
        self.built = True

    def expected_names(self, outputs: Outputs) -> list:
        """The `<output>_loss` names `build` will give for `outputs`, without a batch."""
        try:
            configs = _per_output(self._loss_config, outputs, "loss")
        except ValueError:
            return []  # `build` raises the full error at the first batch
        with_loss = [name for name, config in zip(outputs.names, configs) if config is not None]
        return [f"{name}_loss" for name in with_loss] if len(with_loss) > 1 else []

    def check_targets(self, y: Any, where: str = "in `y`") -> None:
        """Checks that host targets hold valid class indices where a loss needs them.

        Called by the data adapters with host copies (all of `y` once for
        arrays, else each batch before it moves to the device), so that a bad
        label never reaches a kernel: on CUDA it would be a device-side assert.

        Args:
            y: Targets on the host, in the structure `fit` received.
            where: Where they come from, for the error (`"in batch 3"`).

        Raises:
            ValueError: naming the output, the loss, the bad labels and the range.
        """
        if self.built:
            _check_values([term[4] for term in self._terms], self.outputs, y, where)

    def __call__(self, y_true: Any, y_pred: Any, sample_weight: Any = None):
        """Returns the total loss, or `None` when no output has a loss."""
        outputs = self.outputs
        if (
            outputs.kind == "single"
            and len(self._terms) == 1
            and not isinstance(y_true, (list, tuple, Mapping))
        ):
            # The common case, kept to one call: one output, one loss.
            _, loss_fn, weight, _, check = self._terms[0]
            pred = y_pred[0] if isinstance(y_pred, (list, tuple)) else y_pred
            sw = sample_weight[0] if isinstance(sample_weight, (list, tuple)) else sample_weight
            check.shapes(y_true, pred)
            value = loss_fn(y_true, pred, sample_weight=sw)
            return value if weight == 1.0 else value * weight
        flat_pred = outputs.flatten(y_pred)
        flat_true = outputs.match(y_true, "y")
        flat_weights = outputs.match(sample_weight, "sample_weight", broadcast=True)
        total = None
        for index, loss_fn, weight, tracker, check in self._terms:
            check.shapes(flat_true[index], flat_pred[index])
            value = loss_fn(flat_true[index], flat_pred[index], sample_weight=flat_weights[index])
            if tracker is not None:
                batch_size = tree.batch_size_of(flat_pred[index])
                if batch_size:
                    tracker.update_state(value, sample_weight=batch_size)
            if weight != 1.0:
                value = value * weight
            total = value if total is None else total + value
        return total


class CompileMetrics:
    """The compiled `metrics` and `weighted_metrics`, applied per output.

    Each metric keeps its own `name`; its log key (`log_names`, parallel to
    `metrics`) adds the output's name for several outputs and `_1`, `_2` to
    duplicates, as Keras 3 does only in the logs.
    """

    def __init__(self, metrics: Any = None, weighted_metrics: Any = None, output_names=None):
        for config in (metrics, weighted_metrics):
            _check_string_ids(config, metrics_module.get, skip=_SHAPE_RESOLVED)
        self._metrics_config = metrics
        self._weighted_config = weighted_metrics
        self._output_names = output_names
        self.built = False
        self.outputs: Optional[Outputs] = None
        self.metrics: list = []
        self.log_names: list = []  # the log key of each of `metrics`
        self._unweighted: list = []  # (output index, metric)
        self._weighted: list = []
        # Stands in `model.metrics` until the first batch builds the metrics.
        self.unbuilt = UnbuiltMetrics(self)
        self._target_checks: list = []  # value checks of the sparse metrics' labels

    def build(self, y_true: Any, y_pred: Any, device: torch.device) -> None:
        self.outputs = Outputs(y_pred, self._output_names)
        if self._metrics_config is not None or self._weighted_config is not None:
            _check_has_outputs(self.outputs, y_pred, "metrics")
        flat_pred = self.outputs.flatten(y_pred)
        flat_true = self.outputs.match(y_true, "y")
        seen: set[int] = set()
        self._unweighted = self._build_set(
            self._metrics_config, "metrics", flat_true, flat_pred, seen
        )
        self._weighted = self._build_set(
            self._weighted_config, "weighted_metrics", flat_true, flat_pred, seen
        )
        self.metrics = [metric for _, metric in self._unweighted + self._weighted]
        self.log_names = self._names_in_logs()
        self._target_checks = _metric_target_checks(
            self._unweighted + self._weighted, self.log_names, self.outputs, flat_pred
        )
        for metric in self.metrics:
            metric.to(device)
            # A metric object may come with the state of an earlier use: the first
            # batch builds it after fit's reset, so start it fresh here.
            metric.reset_state()
        self.built = True

    def _identifiers(self, config, argument, outputs: Outputs) -> list:
        """`(output index, identifier)` for every metric of `config`."""
        if config is None:
            return []
        if outputs.count == 1 and not _per_entry_metrics(config, outputs):
            if isinstance(config, Mapping):
                config = outputs.without_others(config, argument)
                config = [m for value in config.values() for m in _as_list(value)]
            if not isinstance(config, (list, tuple)):
                raise TypeError(
                    f"`{argument}` must be a list (or a dict keyed by output name)."
                    f" Received: {argument} of type {type(config).__name__}."
                )
            per_output = [list(config)]
        else:
            per_output = [_as_list(value) for value in _per_output(config, outputs, argument)]
        return [
            (index, identifier)
            for index, identifiers in enumerate(per_output)
            for identifier in identifiers
            if identifier is not None
        ]

    def _build_set(self, config, argument, flat_true, flat_pred, seen) -> list:
        built = []
        for index, identifier in self._identifiers(config, argument, self.outputs):
            metric = self._resolve(identifier, flat_true[index], flat_pred[index])
            if id(metric) in seen:
                metric = copy.deepcopy(metric)
            seen.add(id(metric))
            built.append((index, metric))
        return built

    @staticmethod
    def _resolve(identifier, y_true, y_pred):
        if isinstance(identifier, str) and identifier.lower() in _SHAPE_RESOLVED and y_true is None:
            raise ValueError(
                f"metrics={identifier!r} is chosen from the shapes of the"
                " targets, but no target `y` was given."
            )
        return metrics_module.get_metric(identifier, y_true, y_pred)

    def _names_in_logs(self) -> list:
        unweighted = [(index, metric.name) for index, metric in self._unweighted]
        weighted = [(index, metric.name) for index, metric in self._weighted]
        return _log_names(self.outputs, unweighted, weighted)

    def named_metrics(self) -> list:
        """`(log key, metric)` for each built metric."""
        return list(zip(self.log_names, self.metrics))

    @property
    def single_output_form(self) -> bool:
        """Whether `metrics` and `weighted_metrics` are flat lists, the form of a single output."""

        def flat(config) -> bool:
            if config is None:
                return True
            nested = (list, tuple, Mapping)
            return isinstance(config, (list, tuple)) and not any(
                isinstance(m, nested) for m in config
            )

        return flat(self._metrics_config) and flat(self._weighted_config)

    def expected_names(self, outputs: Outputs) -> list:
        """The log names `build` will give for `outputs`, without a batch.

        A string id is named by its spelling and anything else by the metric
        `get` makes of it, so no shapes are needed.
        """

        def base_names(config, argument) -> list:
            identifiers = self._identifiers(config, argument, outputs)
            return [(index, _base_name(identifier)) for index, identifier in identifiers]

        try:
            unweighted = base_names(self._metrics_config, "metrics")
            weighted = base_names(self._weighted_config, "weighted_metrics")
        except (TypeError, ValueError):
            return []  # `build` raises the full error at the first batch
        return _log_names(outputs, unweighted, weighted)

    def check_targets(self, y: Any, where: str = "in `y`") -> None:
        """Checks host targets for the metrics that index by label (see
        `CompileLoss.check_targets`)."""
        if self.built:
            _check_values(self._target_checks, self.outputs, y, where)

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        if self.outputs.kind == "single" and not isinstance(y_true, (list, tuple, Mapping)):
            # The common case: one output, no structure to walk.
            pred = y_pred[0] if isinstance(y_pred, (list, tuple)) else y_pred
            for _, metric in self._unweighted:
                metric.update_state(y_true, pred)
            if self._weighted:
                sw = sample_weight[0] if isinstance(sample_weight, (list, tuple)) else sample_weight
                for _, metric in self._weighted:
                    metric.update_state(y_true, pred, sample_weight=sw)
            return
        flat_pred = self.outputs.flatten(y_pred)
        flat_true = self.outputs.match(y_true, "y")
        for index, metric in self._unweighted:
            if flat_true[index] is not None:
                metric.update_state(flat_true[index], flat_pred[index])
        if self._weighted:
            flat_weights = self.outputs.match(sample_weight, "sample_weight", broadcast=True)
            for index, metric in self._weighted:
                if flat_true[index] is not None:
                    metric.update_state(
                        flat_true[index], flat_pred[index], sample_weight=flat_weights[index]
                    )


def _per_entry_metrics(config: Any, outputs: Outputs) -> bool:
    """Whether a metrics list gives one entry (a list, or `None`) per element of a returned
    tuple, tensor or not, rather than being one output's flat list."""
    nested = (list, tuple, Mapping, type(None))
    return outputs.spans_every_entry(config) and any(isinstance(m, nested) for m in config)


def _base_name(identifier: Any) -> str:
    if isinstance(identifier, str):
        return identifier
    return metrics_module.get_metric(identifier, None, None).name


def _log_names(outputs: Outputs, unweighted: list, weighted: list) -> list:
    """Keras 3's log names of `(output index, metric name)` pairs: prefixed by the
    output for several outputs, `weighted_` on a collision, `_1` for duplicates."""
    prefixes = outputs.names if outputs.count > 1 else None

    def log_name(index: int, base: str) -> str:
        return f"{prefixes[index]}_{base}" if prefixes else base

    names = [log_name(index, base) for index, base in unweighted]
    taken = set(names)
    for index, base in weighted:
        name = log_name(index, base)
        names.append(log_name(index, f"weighted_{base}") if name in taken else name)
    counts: dict[str, int] = {}
    for position, name in enumerate(names):
        seen = counts.get(name, 0)
        counts[name] = seen + 1
        if seen:
            names[position] = f"{name}_{seen}"
    return names


class UnbuiltMetrics(metrics_module.Metric):
    """The compiled metrics in `model.metrics` before the first batch builds them.

    As Keras 3's `CompileMetrics`, it builds them from the first
    `update_state(y_true, y_pred, sample_weight)`, so a custom `train_step`
    that walks `model.metrics` from its first call updates them.
    """

    def __init__(self, compile_metrics: "CompileMetrics"):
        super().__init__(name="compile_metrics")
        self._compile_metrics = compile_metrics

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        compiled = self._compile_metrics
        if not compiled.built:
            compiled.build(y_true, y_pred, self.device)
        compiled.update_state(y_true, y_pred, sample_weight)

    def result(self) -> dict:
        return {name: metric.result() for name, metric in self._compile_metrics.named_metrics()}

    def reset_state(self) -> None:
        for metric in self._compile_metrics.metrics:
            metric.reset_state()


def _metric_rule(metric: Any) -> Any:
    """The label rule of the metrics that look labels up (a bad one crashes them)."""
    if isinstance(metric, metrics_module.SparseTopKCategoricalAccuracy):
        return None if metric.from_sorted_ids else targets_module.ClassIndices()
    if isinstance(metric, metrics_module.SparseCategoricalCrossentropy):
        return targets_module.ClassIndices(metric.axis, metric.ignore_class)
    return None


def _metric_target_checks(metrics: list, names: list, outputs: Outputs, flat_pred: list) -> list:
    checks = []
    for (index, metric), name in zip(metrics, names):
        rule = _metric_rule(metric)
        if rule is not None:
            checks.append(_TargetCheck(index, outputs, rule, name, flat_pred[index]))
    return checks


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]
