"""The Docker lab of vulnerable Orthanc hosts (`orthanc-harden lab up | status | down`).

It ships in the wheel, but only the `lab` command and the tests import it; what it needs beyond the tool's own
dependencies is the optional extra `lab` (``pip install 'orthanc-harden[lab]'``).
"""

import importlib.util

DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The `lab` extra of pyproject.toml, by import name: seeding DICOM instances, the lab registry's htpasswd, the lab
# engine's TLS certificates.
EXTRA = ("pydicom", "bcrypt", "cryptography")


def missing_extra() -> list[str]:
    """The modules of the `lab` extra that cannot be imported here (none are imported to find out)."""
    return [name for name in EXTRA if importlib.util.find_spec(name) is None]
