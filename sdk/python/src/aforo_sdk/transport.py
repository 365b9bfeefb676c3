"""HTTP to Aforo with the standard library: one keep-alive connection per thread and host."""
from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None


class Transport:
    """POSTs JSON to one base URL with the bearer token and the tenant header."""

    def __init__(self, base_url: str, token: str, tenant: str, *, timeout: float = 10.0) -> None:
        parts = urlsplit(base_url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port]; got {base_url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.prefix = parts.path
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {token}", "X-Tenant-Id": tenant,
                        "Content-Type": "application/json", "User-Agent": "aforo-sdk-python"}
        self._local = threading.local()

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.scheme == "https" else \
                http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def post(self, path: str, body: bytes, *, timeout: float | None = None) -> Reply:
        """One POST; raises OSError (or http.client.HTTPException) when no answer came."""
        timeout = self.timeout if timeout is None else timeout
        for attempt in (1, 2):
            conn = self._connection(timeout)
            try:
                conn.request("POST", self.prefix + path, body=body, headers=self.headers)
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server closed meanwhile: one fresh try.
                self._drop()
                if attempt == 2:
                    raise
                continue
            except BaseException:
                self._drop()
                raise
            headers = {k.lower(): v for k, v in response.getheaders()}
            if headers.get("connection", "").lower() == "close":
                self._drop()
            return Reply(response.status, headers, data)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._drop()
