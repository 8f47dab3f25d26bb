"""AWS credentials and SigV4 request signing for httpx, both botocore's: nothing of either is hand-rolled.

Credentials come from botocore's standard chain (environment, shared config and credentials files
and their profiles, session tokens, SSO, container and instance roles), resolved on the first
request (in a worker thread: the chain may read files or ask a metadata endpoint) and refreshed by
botocore when they expire.  Each request is signed whole, body included, by `botocore.auth.SigV4Auth`;
the secret key and session token are registered as secrets, so no message, log or error shows them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import Any

import httpx

from ..core.errors import AuthenticationError, ConfigError
from ..core.secrets import register

AWS_EXTRA = "pip install 'opencode_lab[aws]'"
#: the headers a signature covers besides the X-Amz-* it adds (httpx sends them as signed)
_SIGNED = ("host", "content-type")


def botocore_session(profile: str | None, where: str) -> Any:
    """A botocore session for *profile* (None: the default chain); a `ConfigError` naming the extra when
    botocore is missing, or naming the profile when it does not exist."""
    try:
        import botocore.exceptions
        import botocore.session
    except ImportError:
        raise ConfigError(f"{where} needs botocore: {AWS_EXTRA}") from None
    session = botocore.session.Session(profile=profile)
    try:
        session.get_config_variable("region")  # reads the profile, so a missing one is refused now
    except botocore.exceptions.ProfileNotFound:
        raise ConfigError(f"{where} profile {profile!r} is not in the AWS config or credentials files") from None
    return session


def session_region(session: Any) -> str | None:
    """The region the AWS configuration names (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's)."""
    region = session.get_config_variable("region")
    return str(region) if region else None


class SigV4(httpx.Auth):
    """Signs each request for *service* in *region* with the credentials of a botocore *session*."""

    requires_request_body = True

    def __init__(self, session: Any, region: str, service: str, *, provider: str) -> None:
        self._session = session
        self._region = region
        self._service = service
        self._provider = provider
        self._credentials: Any = None
        self._lock = threading.Lock()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        self._sign(request, self._frozen())
        yield request

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        self._sign(request, await asyncio.to_thread(self._frozen))
        yield request

    def _frozen(self) -> Any:
        """The current access key, secret and token (botocore refreshes expiring ones)."""
        with self._lock:
            if self._credentials is None:
                self._credentials = self._session.get_credentials()
            if self._credentials is None:
                raise AuthenticationError(
                    "no AWS credentials found (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile in "
                    "~/.aws/credentials, SSO or a role)",
                    provider=self._provider,
                )
            frozen = self._credentials.get_frozen_credentials()
        register(frozen.secret_key)
        register(frozen.token or "")
        return frozen

    def _sign(self, request: httpx.Request, frozen: Any) -> None:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        headers = {name: request.headers[name] for name in _SIGNED if name in request.headers}
        signed = AWSRequest(method=request.method, url=str(request.url), data=request.content, headers=headers)
        SigV4Auth(frozen, self._service, self._region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
