import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from torchfit.callbacks import RemoteMonitor


@pytest.fixture
def server():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()


def test_posts_form_field_with_json(server):
    root, received = server
    RemoteMonitor(root=root).on_epoch_end(2, {"loss": 0.5, "acc": np.float32(0.25)})
    path, headers, body = received[0]
    assert path == "/publish/epoch/end/"
    payload = json.loads(urllib.parse.parse_qs(body.decode())["data"][0])
    assert payload == {"epoch": 2, "loss": 0.5, "acc": 0.25}


def test_posts_json_body_with_headers(server):
    root, received = server
    RemoteMonitor(root=root, path="/p", send_as_json=True, headers={"X-Token": "t"}).on_epoch_end(
        0, {"loss": 1.0}
    )
    path, headers, body = received[0]
    assert path == "/p" and headers["X-Token"] == "t"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"epoch": 0, "loss": 1.0}


def test_unreachable_server_warns():
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor"):
        RemoteMonitor(root="http://127.0.0.1:1").on_epoch_end(0, {"loss": 1.0})
