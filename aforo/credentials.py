"""Credentials encrypted at rest with a key from the environment: a POLL cost source's API key,
an export schedule's DSN password.

`AFORO_CREDENTIALS_KEY` holds one Fernet key, or several separated by commas: the first
encrypts, every one decrypts, so a key is rotated by putting the new one first. Without it,
credentials cannot be stored (the error says what to set). The clear value is only ever in
memory, for the request that uses it; nothing returns it, logs it or shows it in the admin.
"""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from aforo.errors import DomainError

KEY_HELP = ("Set AFORO_CREDENTIALS_KEY to a Fernet key (python -c \"from cryptography.fernet "
            "import Fernet; print(Fernet.generate_key().decode())\") to store credentials.")


class CredentialsUnavailable(DomainError):
    code = "credentials_unavailable"


def _cipher() -> MultiFernet:
    keys = [k.strip() for k in (settings.AFORO_CREDENTIALS_KEY or "").split(",") if k.strip()]
    if not keys:
        raise CredentialsUnavailable(KEY_HELP, field="credentials")
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError:
        raise CredentialsUnavailable("AFORO_CREDENTIALS_KEY is not a Fernet key (32 url-safe "
                                     "base64-encoded bytes).", field="credentials") from None


def credentials_seal(clear: str) -> str:
    return _cipher().encrypt(clear.encode()).decode()


def credentials_open(sealed: str) -> str:
    try:
        return _cipher().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise CredentialsUnavailable("The stored credentials cannot be decrypted with "
                                     "AFORO_CREDENTIALS_KEY; store them again.",
                                     field="credentials") from None
