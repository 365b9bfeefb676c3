"""A real ASGI server for the browser tests: Daphne (as the Procfile runs it) in a thread.

In a thread of the test process, not a subprocess, so it shares the test database settings and
the event store the test chose (an embedded chdb store cannot be opened by a second process).
The Twisted reactor runs once per process, so the server lives for the whole session.
"""
from __future__ import annotations

import threading
import time

from daphne.server import Server  # installs the asyncio reactor before Twisted is imported
from twisted.internet import reactor


class LiveAsgiServer:
    def __init__(self, application) -> None:
        self.server = Server(application=application,
                             endpoints=["tcp:port=0:interface=127.0.0.1"],
                             signal_handlers=False, verbosity=0)
        self.thread = threading.Thread(target=self.server.run, name="daphne", daemon=True)

    def start(self, timeout: float = 15) -> LiveAsgiServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.listening_addresses:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("Daphne did not start listening")
            time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        host, port = self.server.listening_addresses[0]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if reactor.running:
            reactor.callFromThread(reactor.stop)
        self.thread.join(timeout=10)
