"""Keras 3's callbacks for torchfit: `torchfit.callbacks.*`.

Each callback lives in its own module; this package only gathers the public
names.
"""

from torchfit.callbacks.backup_and_restore import BackupAndRestore
from torchfit.callbacks.callback import Callback
from torchfit.callbacks.callback_list import CallbackList
from torchfit.callbacks.csv_logger import CSVLogger
from torchfit.callbacks.early_stopping import EarlyStopping
from torchfit.callbacks.history import History
from torchfit.callbacks.lambda_callback import LambdaCallback
from torchfit.callbacks.learning_rate_scheduler import LearningRateScheduler
from torchfit.callbacks.model_checkpoint import ModelCheckpoint
from torchfit.callbacks.monitor_callback import MonitorCallback
from torchfit.callbacks.progbar_logger import ProgbarLogger
from torchfit.callbacks.reduce_lr_on_plateau import ReduceLROnPlateau
from torchfit.callbacks.remote_monitor import RemoteMonitor
from torchfit.callbacks.swap_ema_weights import SwapEMAWeights
from torchfit.callbacks.tensorboard import TensorBoard
from torchfit.callbacks.terminate_on_nan import TerminateOnNaN

__all__ = [
    "BackupAndRestore",
    "CSVLogger",
    "Callback",
    "CallbackList",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "MonitorCallback",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "RemoteMonitor",
    "SwapEMAWeights",
    "TensorBoard",
    "TerminateOnNaN",
]
