"""Writes TensorBoard event files with torch's `SummaryWriter` (no TensorFlow).

Owns the Keras 3 layout: `log_dir/train` and `log_dir/validation`, tags
`epoch_<key>` (validation keys lose `val_`), `epoch_learning_rate`,
`epoch_steps_per_second`, `batch_<key>`, `evaluation_<key>_vs_iterations`,
weight histograms and images, the module graph, embeddings, the optional
torch profiler trace, checking `log_dir` before training and carrying the
batch step count through a resumed run. Log values themselves belong to
the loop.

`profile_batch` (Keras raises on its torch backend) runs `torch.profiler`
over the chosen training batches and writes a trace into `log_dir/train`
that TensorBoard's PyTorch profiler plugin (`torch-tb-profiler`) opens.
"""

import os
import time
import warnings
from collections.abc import Mapping
from typing import Any, Optional, Union

import torch
from torch import nn

from torchfit.callbacks.callback import Callback, Logs, check_batch_frequency
from torchfit.callbacks.learning_rate_scheduler import get_learning_rate
from torchfit.utils.file_utils import check_folder

__all__ = ["TensorBoard"]


def _parse_profile_batch(profile_batch: Any) -> tuple[int, int]:
    message = (
        "`profile_batch` must be a non-negative integer or a pair of positive"
        " integers (start, stop) naming the batches to profile."
        f" Received: profile_batch={profile_batch!r}."
    )
    if isinstance(profile_batch, str):
        try:
            profile_batch = [int(part) for part in profile_batch.split(",")]
        except ValueError as err:
            raise ValueError(message) from err
        if len(profile_batch) == 1:
            profile_batch = profile_batch[0]
    if isinstance(profile_batch, int) and not isinstance(profile_batch, bool):
        start = stop = profile_batch
    elif isinstance(profile_batch, (tuple, list)) and len(profile_batch) == 2:
        start, stop = profile_batch
    else:
        raise ValueError(message)
    if start < 0 or stop < start:
        raise ValueError(message)
    return start, stop


def _weight_image(weight: torch.Tensor) -> Optional[torch.Tensor]:
    """A weight as (kernels, H, W) scaled to [0, 1], or None for >3-d weights."""
    image = weight.detach().float().cpu().squeeze()
    if image.ndim == 1:  # a bias: one column, as Keras draws it
        image = image.reshape(1, -1, 1)
    elif image.ndim == 2:
        if image.shape[0] > image.shape[1]:
            image = image.t()
        image = image.unsqueeze(0)
    elif image.ndim != 3:
        return None
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp_min(1e-12)


def _split_example(example: Any) -> tuple[tuple, dict]:
    """`model.example_inputs` as (args, kwargs).

    The model keeps `(args, kwargs)` of its first forward call; a bare tensor
    or a tuple of tensors is taken as the positional inputs.
    """
    if (
        isinstance(example, tuple)
        and len(example) == 2
        and isinstance(example[0], (tuple, list))
        and isinstance(example[1], dict)
    ):
        return tuple(example[0]), dict(example[1])
    if isinstance(example, (tuple, list)):
        return tuple(example), {}
    return (example,), {}


class TensorBoard(Callback):
    """Logs training to TensorBoard: scalars, histograms, graph, embeddings.

    Start TensorBoard with `tensorboard --logdir=path_to_your_logs`.

    Args:
        log_dir: Folder for the event files. Defaults to `"logs"`.
        histogram_freq: Epochs between weight histograms (0: none).
            Defaults to `0`.
        write_graph: Whether to write the module graph, traced on the input
            the model keeps as `model.example_inputs` (skipped when the
            model has none or takes keyword inputs). Defaults to `True`.
        write_images: Whether to write weights as images with the
            histograms. Defaults to `False`.
        write_steps_per_second: Whether to log steps per second
            (`epoch_steps_per_second`, and `batch_steps_per_second` with
            batch-level logging). Defaults to `False`.
        update_freq: `"epoch"`, `"batch"`, or an integer: write
            `batch_<key>` every that many batches. Defaults to `"epoch"`.
        profile_batch: Batch (from 1) or `(start, stop)` pair to profile
            with `torch.profiler`; 0 disables. Defaults to `0`.
        embeddings_freq: Epochs between writes of every `nn.Embedding`'s
            weights to the projector (0: none). Defaults to `0`.
        embeddings_metadata: Label file (one label per line) for every
            embedding, or a dict from embedding module name to such a file.
            Defaults to `None`.

    Raises:
        ValueError: For a bad `update_freq` or `profile_batch`; when
            training starts, if `log_dir` (or a folder above it) is a file.

    Example:
    >>> import tempfile
    >>> callback = TensorBoard(log_dir=tempfile.mkdtemp(), update_freq="batch")
    >>> callback.update_freq
    1
    """

    chief_only = True  # writes event files: rank 0 alone under torch.distributed

    def __init__(
        self,
        log_dir: Union[str, os.PathLike] = "logs",
        histogram_freq: int = 0,
        write_graph: bool = True,
        write_images: bool = False,
        write_steps_per_second: bool = False,
        update_freq: Union[str, int] = "epoch",
        profile_batch: Union[int, tuple, str] = 0,
        embeddings_freq: int = 0,
        embeddings_metadata: Union[str, dict, None] = None,
    ):
        super().__init__()
        check_batch_frequency("update_freq", update_freq, words=("epoch", "batch"))
        if update_freq == "batch":
            update_freq = 1
        self.log_dir = os.fspath(log_dir)
        self.histogram_freq = histogram_freq
        self.write_graph = write_graph
        self.write_images = write_images
        self.write_steps_per_second = write_steps_per_second
        self.update_freq = update_freq
        self.embeddings_freq = embeddings_freq
        self.embeddings_metadata = embeddings_metadata
        self._start_batch, self._stop_batch = _parse_profile_batch(profile_batch)
        self._should_trace = not (self._start_batch == 0 and self._stop_batch == 0)
        self._profiler: Optional[torch.profiler.profile] = None
        self._train_dir = os.path.join(self.log_dir, "train")
        self._val_dir = os.path.join(self.log_dir, "validation")
        self._writers: dict = {}
        self._global_train_batch = 0
        self._batch_start_time = 0.0
        self._epoch_start_time = 0.0
        self._epoch_start_iterations = 0
        self._graph_written = False

    # Writers are created on first use, so an unused one leaves no file.

    def _writer(self, which: str):
        if which not in self._writers:
            from torch.utils.tensorboard import SummaryWriter

            folder = self._train_dir if which == "train" else self._val_dir
            self._writers[which] = SummaryWriter(log_dir=folder)
        return self._writers[which]

    def _close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        self._close_writers()
        self._graph_written = False

    def _overrides(self, hook: str) -> bool:
        batch_level = self.update_freq != "epoch" or self._should_trace
        if hook == "on_train_batch_end":
            return batch_level
        if hook == "on_train_batch_begin":
            return self._should_trace or (batch_level and self.write_steps_per_second)
        return False

    def _module(self) -> Optional[nn.Module]:
        module = getattr(self.model, "module", None)
        if isinstance(module, nn.Module):
            return module
        return self.model if isinstance(self.model, nn.Module) else None

    def _iterations(self) -> Optional[int]:
        optimizer = getattr(self.model, "optimizer", None)
        iterations = getattr(optimizer, "iterations", None)
        return None if iterations is None else int(iterations)

    def on_train_begin(self, logs: Logs = None) -> None:
        # Writers open lazily: check the folder now, before the first step.
        check_folder("log_dir", self.log_dir)
        self._global_train_batch = 0

    def state_dict(self) -> dict:
        """The training batches logged so far (the `batch_*` step).

        Example:
        >>> TensorBoard().state_dict()
        {'global_train_batch': 0}
        """
        return {"global_train_batch": self._global_train_batch}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continues the batch steps of the interrupted run."""
        self._global_train_batch = state_dict["global_train_batch"]

    def on_train_end(self, logs: Logs = None) -> None:
        self._stop_trace()
        self._close_writers()

    def on_train_batch_begin(self, batch: int, logs: Logs = None) -> None:
        if self.write_steps_per_second:
            self._batch_start_time = time.time()
        if self._should_trace and self._global_train_batch + 1 == self._start_batch:
            self._start_trace()

    def on_train_batch_end(self, batch: int, logs: Logs = None) -> None:
        # Steps count from 1, as Keras's global batch counter does.
        self._global_train_batch += 1
        step = self._global_train_batch
        if self.update_freq != "epoch" and step % self.update_freq == 0:
            writer = self._writer("train")
            if self.write_steps_per_second:
                elapsed = max(time.time() - self._batch_start_time, 1e-9)
                writer.add_scalar("batch_steps_per_second", 1.0 / elapsed, step)
            # Reading the lazy logs is the device sync: only on written steps.
            for name, value in (logs or {}).items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"batch_{name}", value, step)
        if self._profiler is not None:
            self._profiler.step()
            if step >= self._stop_batch:
                self._stop_trace()

    def on_epoch_begin(self, epoch: int, logs: Logs = None) -> None:
        if self.write_steps_per_second:
            self._epoch_start_iterations = self._iterations() or 0
            self._epoch_start_time = time.time()

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        if self.write_graph and not self._graph_written:
            # After the first epoch the model has seen an input to trace.
            self._write_graph()
        self._log_epoch_metrics(epoch, logs or {})
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)
        if self.embeddings_freq and epoch % self.embeddings_freq == 0:
            self._log_embeddings(epoch)

    def on_test_end(self, logs: Logs = None) -> None:
        iterations = self._iterations()
        if iterations is None or not logs:
            return
        writer = self._writer("val")
        for name, value in logs.items():
            if isinstance(value, (int, float)):
                writer.add_scalar(f"evaluation_{name}_vs_iterations", value, iterations)
        writer.flush()

    def _log_epoch_metrics(self, epoch: int, logs: Mapping) -> None:
        if not logs:
            return
        train_logs = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val_logs = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None:
            try:
                train_logs["learning_rate"] = get_learning_rate(optimizer)
            except ValueError:
                pass
        if self.write_steps_per_second:
            train_logs["steps_per_second"] = self._steps_per_second()
        for which, values in (("train", train_logs), ("val", val_logs)):
            if not values:
                continue
            writer = self._writer(which)
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"epoch_{name}", value, epoch)
            writer.flush()

    def _steps_per_second(self) -> float:
        elapsed = max(time.time() - self._epoch_start_time, 1e-9)
        iterations = self._iterations()
        if iterations is None:
            steps = (self.params or {}).get("steps") or 0
        else:
            steps = iterations - self._epoch_start_iterations
        return steps / elapsed

    def _log_weights(self, epoch: int) -> None:
        module = self._module()
        if module is None:
            return
        writer = self._writer("train")
        for name, parameter in module.named_parameters():
            values = parameter.detach().float().cpu()
            writer.add_histogram(f"{name}/histogram", values, epoch)
            if self.write_images:
                image = _weight_image(values)
                if image is not None:  # each kernel of a 3-d weight its own grey image, as in Keras
                    writer.add_images(f"{name}/image", image[:, None], epoch, dataformats="NCHW")
        writer.flush()

    def _write_graph(self) -> None:
        self._graph_written = True
        module = self._module()
        example = getattr(self.model, "example_inputs", None)
        if module is None or example is None:
            return
        args, kwargs = _split_example(example)
        if kwargs:
            # `add_graph` traces positional inputs only.
            return
        was_training = module.training
        try:
            with warnings.catch_warnings():
                # add_graph traces with torch.jit, which now warns it is
                # deprecated; the trace still works and is all TensorBoard reads.
                warnings.simplefilter("ignore", DeprecationWarning)
                self._writer("train").add_graph(module, args)
        except Exception as err:  # tracing fails on data-dependent control flow
            warnings.warn(
                f"TensorBoard could not trace the module graph ({type(err).__name__}:"
                f" {err}). Pass write_graph=False to silence this.",
                stacklevel=2,
            )
        finally:
            # Restore the mode in finally: tracing may switch it.
            module.train(was_training)

    def _embedding_metadata(self, name: str, num_rows: int) -> Optional[list]:
        metadata = self.embeddings_metadata
        path = metadata.get(name) if isinstance(metadata, dict) else metadata
        if not path or not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as file:
            labels = file.read().splitlines()
        return labels if len(labels) == num_rows else None

    def _log_embeddings(self, epoch: int) -> None:
        module = self._module()
        if module is None:
            return
        embeddings = {
            name: child for name, child in module.named_modules() if isinstance(child, nn.Embedding)
        }
        if isinstance(self.embeddings_metadata, dict):
            unknown = sorted(set(self.embeddings_metadata) - set(embeddings))
            if unknown:
                raise ValueError(
                    "`embeddings_metadata` names modules that are not"
                    f" `nn.Embedding`s of the model: {unknown}. Embedding"
                    f" modules: {sorted(embeddings) or '(none)'}."
                )
        writer = self._writer("train")
        for name, embedding in embeddings.items():
            weight = embedding.weight.detach().float().cpu()
            writer.add_embedding(
                weight,
                metadata=self._embedding_metadata(name, weight.shape[0]),
                global_step=epoch,
                tag=name or "embedding",
            )
        writer.flush()

    def _start_trace(self) -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profiler = torch.profiler.profile(
            activities=activities,
            on_trace_ready=torch.profiler.tensorboard_trace_handler(self._train_dir),
        )
        self._profiler.start()

    def _stop_trace(self) -> None:
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        try:
            profiler.stop()
        except Exception as err:  # a failed trace must not fail training
            warnings.warn(f"TensorBoard could not save the profile: {err}", stacklevel=2)
