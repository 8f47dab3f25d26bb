"""A test server in a child process, for benchmarks and soaks where the client must own the CPU.

The child runs ``python -m opencode_lab.testing --server MODULE:CLASS`` (see ``__main__``), prints
``READY <base_url>`` once listening, and is driven through the server's ``/_admin`` endpoints; this
class is their client, with the in-process server's control surface (``configure``, ``reset``,
``log``, ``count``, ``connections``). Get one from ``FaultServer.spawn(**settings)`` (any vendor server has ``spawn``).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any, Self

from opencode_lab.testing.faults import check_settings, count

__all__ = ["SpawnedFaultServer"]


class SpawnedFaultServer:
    """The server class named *server* (``module:Class``, able to play *outcomes*) in a child process."""

    def __init__(
        self,
        server: str,
        outcomes: frozenset[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout: float = 20.0,
        **settings: Any,
    ) -> None:
        check_settings(settings, outcomes)
        self.outcomes = outcomes
        env = dict(os.environ)  # make the package importable even when it is not installed
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(Path(__file__).resolve().parents[2]), env.get("PYTHONPATH")])
        )
        cmd = [sys.executable, "-m", "opencode_lab.testing", "--server", server, "--host", host, "--port", str(port)]
        cmd += ["--settings", json.dumps(settings)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], startup_timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"{server} did not start (first line: {line!r})")
        self.base_url = line.split()[1]
        self._root = "/".join(self.base_url.split("/")[:3])
        self.port = int(self._root.rsplit(":", 1)[1])

    def configure(self, **settings: Any) -> None:
        check_settings(settings, self.outcomes)
        self._admin("POST", "/_admin/script", settings)

    def reset(self) -> None:
        self._admin("POST", "/_admin/reset")

    @property
    def log(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self._admin("GET", "/_admin/log")
        return entries

    def count(self, outcome: str | None = None, since: float | None = None) -> int:
        return count(self.log, outcome, since)

    @property
    def connections(self) -> int:
        """Connections the server accepted so far (the admin requests' own included)."""
        accepted: int = self._admin("GET", "/_admin/connections")
        return accepted

    def stop(self) -> None:
        """End the child (SIGTERM, then SIGKILL after 10 s); safe to call twice."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _admin(self, method: str, path: str, payload: Any = None) -> Any:
        data = json.dumps(payload if payload is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(
            self._root + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with self._opener.open(request, timeout=10) as response:
            return json.loads(response.read())
