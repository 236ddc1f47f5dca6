"""Posts each epoch's logs to an HTTP server.

Owns the request (standard-library `urllib`, no extra dependency) and
turning a failed request into a warning rather than a crashed run.
"""

import json
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Optional

import numpy as np

from torchfit.callbacks.callback import Callback, Logs

__all__ = ["RemoteMonitor"]


class RemoteMonitor(Callback):
    """Sends the epoch logs to a server with an HTTP POST at each epoch end.

    The payload is `{"epoch": epoch, **logs}`: as a form field named
    `field` holding its JSON text, or as a JSON body with
    `send_as_json=True`.

    Args:
        root: Server address. Defaults to `"http://localhost:9000"`.
        path: Path on the server. Defaults to `"/publish/epoch/end/"`.
        field: Form field name for the JSON text. Defaults to `"data"`.
        headers: Extra HTTP headers. Defaults to `None`.
        send_as_json: Whether to send the payload as the JSON body.
            Defaults to `False`.

    Example:
    >>> RemoteMonitor(root="http://127.0.0.1:9000").path
    '/publish/epoch/end/'
    """

    chief_only = True  # posts to a server: rank 0 alone under torch.distributed

    def __init__(
        self,
        root: str = "http://localhost:9000",
        path: str = "/publish/epoch/end/",
        field: str = "data",
        headers: Optional[dict] = None,
        send_as_json: bool = False,
    ):
        super().__init__()
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json
        self.timeout = 10.0

    def on_epoch_end(self, epoch: int, logs: Logs = None) -> None:
        payload = {"epoch": epoch}
        for key, value in (logs or {}).items():
            if isinstance(value, (np.ndarray, np.generic)):
                value = value.tolist()
            payload[key] = value
        headers = dict(self.headers or {})
        if self.send_as_json:
            body = json.dumps(payload).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(payload)}).encode("utf-8")
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        request = urllib.request.Request(
            self.root + self.path, data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError):
            warnings.warn(
                f"Could not reach RemoteMonitor root server at {self.root}",
                stacklevel=2,
            )
