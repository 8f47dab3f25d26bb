"""Privacy mode's stand-in for text that is not kept: a keyed hash that says plainly what it is.

What a row stores instead of a prompt or an answer reads ``[not kept: privacy mode]
hmac-sha256:<hex>``, so every view of the run log (drill-down, history, labels, a
resumed run's replayed rows) shows that the text was not kept rather than a bare
hash.  The hash is keyed with the audit key: without it, a short or guessable
prompt cannot be recovered by hashing candidates; with it, one can still check
whether a given text was sent (`conceal` it and compare).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from .audit_key import AuditKey

NOT_KEPT = "[not kept: privacy mode]"


def conceal(key: AuditKey, text: str) -> str:
    """*text*'s stand-in (text already concealed is returned as it is: a replayed row is saved again)."""
    if text.startswith(NOT_KEPT):
        return text
    digest = hmac.new(key.secret, b"opencode_lab privacy\0" + text.encode("utf-8", "surrogatepass"), hashlib.sha256)
    return f"{NOT_KEPT} hmac-sha256:{digest.hexdigest()}"


def concealer(key_source: Callable[[], AuditKey]) -> Callable[[str], str]:
    """`conceal` under the key *key_source* gives, asked for at the first use."""
    key: list[AuditKey] = []

    def hide(text: str) -> str:
        if not key:
            key.append(key_source())
        return conceal(key[0], text)

    return hide
