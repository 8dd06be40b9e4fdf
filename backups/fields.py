"""Re-export shim: the encrypted field lives in the core now (``drportal.fields``).

Kept because existing migrations (backups 0001/0002/0015, incidents 0001) reference
``backups.fields.EncryptedTextField`` by this path; new code imports ``drportal.fields``.
"""

from drportal.fields import EncryptedTextField, field_fernet

__all__ = ["EncryptedTextField", "field_fernet"]
