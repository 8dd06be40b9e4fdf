"""age keys: the recipients every backup is encrypted to, and the identities that open them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from pyrage import x25519


class KeyProblem(Exception):
    """A key problem stated for people: missing, unreadable or malformed keys."""


def key_id(recipient: str) -> str:
    """Short, stable, public identifier of a recipient (shown in manifests and the admin)."""
    return hashlib.sha256(recipient.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Recipients:
    keys: tuple[x25519.Recipient, ...]
    public: tuple[str, ...]

    @property
    def key_ids(self) -> list[str]:
        return [key_id(p) for p in self.public]


def load_recipients(public_keys: list[str] | None = None) -> Recipients:
    """The configured recipients; refuses to go on without any (never back up unencrypted)."""
    public = [p.strip() for p in (public_keys if public_keys is not None else settings.BACKUP_AGE_RECIPIENTS)]
    public = [p for p in public if p]
    if not public:
        raise KeyProblem(
            "no age recipients configured: set BACKUP_AGE_RECIPIENTS to one or more age1... public keys; "
            "backups are never written unencrypted"
        )
    parsed = []
    for p in public:
        try:
            parsed.append(x25519.Recipient.from_str(p))
        except Exception:
            raise KeyProblem(f"BACKUP_AGE_RECIPIENTS: {p[:12]}... is not a valid age X25519 public key") from None
    return Recipients(tuple(parsed), tuple(public))


def parse_identities(text: str, source: str) -> list[x25519.Identity]:
    identities = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except Exception:
            # Never echo the line: it may be a private key with a typo.
            raise KeyProblem(f"{source}: line {number} is not an age identity (AGE-SECRET-KEY-1...)") from None
    if not identities:
        raise KeyProblem(f"{source}: no age identity found")
    return identities


def load_identities(path: str | None = None) -> list[x25519.Identity]:
    """The private keys used to verify and restore."""
    path = path or settings.BACKUP_AGE_IDENTITY_FILE
    if not path:
        raise KeyProblem("no age identity configured: set BACKUP_AGE_IDENTITY_FILE to the private key file")
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise KeyProblem(f"BACKUP_AGE_IDENTITY_FILE: cannot read {path}: {exc.strerror}") from None
    return parse_identities(text, "BACKUP_AGE_IDENTITY_FILE")


def generate_identity_file(path: Path) -> str:
    """Write a new identity in age-keygen's format (0600); returns its public key."""
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(f"# created: by DR Portal\n# public key: {public}\n{identity}\n")
    return public
