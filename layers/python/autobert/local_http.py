"""One way to serve an ASGI app (Starlette) locally: uvicorn, with the httptools parser, in a daemon thread of this
process. Used by the local API and the runs console.

    server = LocalServer(app, "127.0.0.1", 0, name="autobert-api")   # bound now: an OSError here if the port is taken
    server.start()                                                   # serves in a daemon thread; server.url
    ...
    server.stop()                                                    # graceful: in-flight requests finish
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn


def bind(host: str, port: int, backlog: int = 128) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port=0``: any free port); raises OSError (port taken, bad host).

    Made with ``proto=IPPROTO_TCP`` (``socket.create_server`` leaves it 0): asyncio turns Nagle's algorithm off
    (TCP_NODELAY) only on connections of such a socket, and uvicorn writes a response's head and body separately, so
    with Nagle on each body would wait for the client's delayed ACK, ~40 ms per request on a kept-alive connection.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class LocalServer:
    def __init__(self, app, host: str, port: int, *, name: str, backlog: int = 128, keep_alive_s: float = 75):
        self.name = name
        self.socket = bind(host, port, backlog)  # bound and listening: clients queue until the thread accepts them
        self.host, self.port = self.socket.getsockname()[:2]
        # keep_alive_s: idle kept-alive connections stay open (API Gateway keeps them ~60 s); uvicorn's default is 5.
        config = uvicorn.Config(app, http="httptools", loop="asyncio", lifespan="off", log_config=None,
                                access_log=False, server_header=False, date_header=True, backlog=backlog,
                                timeout_keep_alive=keep_alive_s, timeout_graceful_shutdown=10,
                                # The peer is who connected: no X-Forwarded-For rewrites it (the endpoint's admin
                                # routes are for loopback peers only).
                                proxy_headers=False)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> LocalServer:
        """Serve in a daemon thread (uvicorn installs no signal handlers outside the main thread)."""
        self._thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.socket]))

    def stop(self, timeout: float = 15) -> None:
        """Stop accepting, let in-flight requests finish, close the socket."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.socket.close()
