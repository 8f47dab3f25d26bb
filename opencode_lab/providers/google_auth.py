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
import json
import threading
from pathlib import Path
from typing import Any

import httpx

from ..core.errors import AuthenticationError, ConfigError, ProviderConnectionError
from ..core.files import read_capped
from ..core.secrets import register

GCP_EXTRA = "pip install 'opencode_lab[gcp]'"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: the largest credentials file read (a service-account key is about 2.3 kB)
MAX_KEY_FILE_BYTES = 1024 * 1024


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
            return _from_file(file, where)
        credentials, project = google.auth.default(scopes=SCOPES)
    except (google.auth.exceptions.DefaultCredentialsError, ValueError, OSError) as exc:
        raise ConfigError(f"{where}: no usable Google credentials ({exc})") from None
    return credentials, project


def _from_file(file: Path, where: str) -> tuple[Any, str | None]:
    """A service-account key or an ``authorized_user`` file, each read by its own google-auth loader (the
    generic loader also runs external-account configurations, which must not come from a shared file)."""
    from google.oauth2 import credentials, service_account

    info = json.loads(read_capped(file, MAX_KEY_FILE_BYTES, f"{where} credentials_file"))
    kind = info.get("type") if isinstance(info, dict) else None
    if kind == "service_account":
        loaded = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
        return loaded, info.get("project_id")
    if kind == "authorized_user":
        return credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES), info.get("quota_project_id")
    raise ConfigError(f"{where} credentials_file {file} is of type {kind!r}, not service_account or authorized_user")


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
