"""Preferences kept from one call to the next (today: slow speech), with the caller's consent.

They are stored against a keyed hash of the caller's number (HMAC-SHA256 with a secret from
the environment, `CALLBOT_PREFERENCE_SECRET`): the store never holds the number, and without
the secret a stolen table cannot be matched back to numbers by trying them all. Without a
secret, nothing is kept and the question is not asked.
"""

from __future__ import annotations

import hashlib
import hmac

from bot.config import national_number


def caller_key(caller: str | None, secret: str) -> str | None:
    """The preference key of a caller's number, None when there is no number or no secret
    (or the number is too short to be a caller's: a withheld number, "anonymous")."""
    number = national_number(caller or "")
    if not secret or len(number) < 6:
        return None
    return hmac.new(secret.encode(), number.encode(), hashlib.sha256).hexdigest()
