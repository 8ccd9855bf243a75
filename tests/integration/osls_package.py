"""Run ``osls package`` offline, once per test session, for the template tests.

No AWS is reachable: the framework gets dummy credentials, and its one AWS call while packaging (CloudFormation
DescribeStacks, to reuse an unchanged layer of a deployed stack) goes to a local stand-in that answers exactly what
CloudFormation answers for a stack that was never deployed.
"""

from __future__ import annotations

import atexit
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OSLS = REPO / "node_modules" / ".bin" / "osls"
MISSING_STACK = (b'<ErrorResponse xmlns="http://cloudformation.amazonaws.com/doc/2010-05-15/"><Error><Type>Sender</Type>'
                 b"<Code>ValidationError</Code><Message>Stack with id autobert-test does not exist</Message></Error>"
                 b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>")

requires_osls = pytest.mark.skipif(not OSLS.exists(), reason="node_modules/.bin/osls missing: run `make setup` "
                                   "(npm ci) to install the Serverless Framework")


class _NoStackYet(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(MISSING_STACK)))
        self.end_headers()
        self.wfile.write(MISSING_STACK)

    def log_message(self, *args) -> None:
        pass


@dataclass(frozen=True)
class Packaged:
    folder: Path
    output: str

    @property
    def template(self) -> dict:
        return json.loads((self.folder / "cloudformation-template-update-stack.json").read_text())


@lru_cache
def package(*params: str, region: str = "eu-west-1") -> Packaged:
    """``osls package --stage test --region <region>`` with ``--param`` overrides; artifacts in a fresh folder
    (removed at exit)."""
    out = Path(tempfile.mkdtemp(prefix="autobert-osls-"))
    atexit.register(shutil.rmtree, out, True)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoStackYet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_SESSION_TOKEN": "testing", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ENDPOINT_URL_CLOUDFORMATION": f"http://127.0.0.1:{server.server_address[1]}",
           "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off", "CI": "1"}
    env.pop("AWS_PROFILE", None)
    cmd = [str(OSLS), "package", "--stage", "test", "--region", region, "--package", str(out)]
    cmd += [f"--param={p}" for p in params]
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode != 0:
        raise AssertionError(f"osls package failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return Packaged(out, proc.stdout + proc.stderr)
