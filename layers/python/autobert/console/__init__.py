"""The local runs console: what the Step Functions console shows for the retraining runs, plus the model registry
and the feedback waiting to be merged, as one offline web page served by the local stack.

    server = make_server(services)            # 127.0.0.1, any free port (bound now: OSError if taken)
    server.start()                            # serves in a daemon thread (uvicorn); server.url is the address
    ...
    server.stop()                             # graceful stop, socket closed
"""

from __future__ import annotations

from autobert.bootstrap import Services
from autobert.console.server import ConsoleServer


def make_server(services: Services, host: str = "127.0.0.1", port: int = 0) -> ConsoleServer:
    """A console bound to ``host:port`` (``port=0``: any free port), not serving yet: ``.start()`` serves it in a
    daemon thread, ``.stop()`` ends it."""
    return ConsoleServer((host, port), services)


__all__ = ["ConsoleServer", "make_server"]
