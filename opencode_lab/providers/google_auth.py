"""Google Cloud credentials for httpx, all google-auth's: Application Default Credentials, files, refresh.

Credentials come from a file the provider table names (a service-account key, an ``authorized_user``
file such as ``gcloud auth application-default login`` writes, or an external account), else from
Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's file, the metadata
server).  Each request gets google-auth's ``before_request`` headers, so a token is refreshed before it
expires (google-auth refreshes a few minutes early), in a worker thread: a refresh is a blocking HTTP
call to the token endpoint.  Tokens are registered as secrets, so no message, log or error shows them.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx

from ..core.errors import AuthenticationError, ConfigError, ProviderConnectionError
from ..core.secrets import register

GCP_EXTRA = "pip install 'opencode_lab[gcp]'"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def load_credentials(file: Path | None, where: str) -> tuple[Any, str | None]:
    """``(credentials, project)`` from *file*, else from Application Default Credentials; a `ConfigError`
    naming the extra when google-auth is missing, or saying what was not found."""
    try:
        import google.auth
        import google.auth.exceptions
    except ImportError:
        raise ConfigError(f"{where} needs google-auth: {GCP_EXTRA}") from None
    try:
        if file is not None:
            credentials, project = google.auth.load_credentials_from_file(str(file), scopes=SCOPES)
        else:
            credentials, project = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise ConfigError(f"{where}: no usable Google credentials ({exc})") from None
    return credentials, project


class GoogleAuth(httpx.Auth):
    """Puts a fresh OAuth token (and a quota project, when the credentials name one) on every request."""

    def __init__(self, credentials: Any, *, provider: str) -> None:
        self._credentials = credentials
        self._provider = provider
        self._lock = threading.Lock()
        self._transport: Any = None

    def sync_auth_flow(self, request: httpx.Request) -> Any:
        request.headers.update(self._headers(str(request.url)))
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        request.headers.update(await asyncio.to_thread(self._headers, str(request.url)))
        yield request

    def _headers(self, url: str) -> dict[str, str]:
        import google.auth.exceptions
        from google.auth.transport.requests import Request

        headers: dict[str, str] = {}
        with self._lock:
            self._transport = self._transport or Request()
            try:
                self._credentials.before_request(self._transport, "POST", url, headers)
            except google.auth.exceptions.TransportError as exc:  # the token endpoint could not be reached: retried
                raise ProviderConnectionError(f"Google token refresh failed: {exc}", provider=self._provider) from None
            except google.auth.exceptions.GoogleAuthError as exc:
                message = f"Google credentials could not be refreshed: {exc}"
                raise AuthenticationError(message, provider=self._provider) from None
            register(str(self._credentials.token or ""))
        return headers
