"""moto's threaded server in this process, on a free loopback port, with state-machine execution on.

moto keeps its state in this process's memory (its backends are module globals shared with
``mock_aws``): the server starts and stops empty, so the runtime re-provisions the template on every
start. One runtime per process.
"""

from __future__ import annotations

import copy
import json
import logging
import urllib.request
from typing import Any

import boto3
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from compliance_tools.local import moto_patches

logger = logging.getLogger(__name__)

# moto accepts any credentials; these keep real ones out of every local call.
FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"  # noqa: S105 - not a secret: moto's documented dummy value


def moto_session(region: str) -> boto3.session.Session:
    """A boto3 session with fake credentials, for clients of the local moto server."""
    return boto3.session.Session(
        aws_access_key_id=FAKE_ACCESS_KEY, aws_secret_access_key=FAKE_SECRET_KEY, region_name=region
    )


class MotoServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: ThreadedMotoServer | None = None
        self._saved_sfn_config: Any = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> str:
        werkzeug_logger = logging.getLogger("werkzeug")
        if werkzeug_logger.level == logging.NOTSET:
            werkzeug_logger.setLevel(logging.WARNING)  # one access-log line per AWS call otherwise
        moto_patches.apply()
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        self.port = server.get_host_and_port()[1]
        self._saved_sfn_config = copy.deepcopy(default_user_config.get("stepfunctions"))
        self._post("/moto-api/reset")
        # Executions of state machines are interpreted only with this switch (server mode: /moto-api/config).
        self._post("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        logger.info("moto server on %s", self.endpoint)
        return self.endpoint

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        try:
            self._post("/moto-api/reset")
            self._post("/moto-api/config", {"stepfunctions": self._saved_sfn_config or {}})
        except OSError:
            logger.debug("moto server did not answer the reset", exc_info=True)
        server.stop()
        inner = getattr(server, "_server", None)
        if inner is not None:
            inner.server_close()

    def _post(self, route: str, body: Any = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(self.endpoint + route, data=data, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            response.read()
