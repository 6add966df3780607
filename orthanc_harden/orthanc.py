"""What the control node knows about Orthanc itself: the version that fixes CVE-2025-0896, default ports and
configuration directory, well-known default credentials, and how to read and compare its versions.

The programs sent to hosts (remote/) cannot import the package; what they share with the control node lives in
remote/orthanc_config.py and is taken from there, so each value has one home.
"""

from __future__ import annotations

import re

from .remote import orthanc_config

# Since 1.5.8 AuthenticationEnabled defaults to RemoteAccessAllowed: the fix of CVE-2025-0896, and the default floor.
FIXED_IN = "1.5.8"
FLOOR = FIXED_IN
HTTP_PORT = 8042
DICOM_PORT = 4242
CONFIG_DIR = orthanc_config.DEFAULT_CONFIG
# Tried by the network probe in this order (the two most common first); the host programs flag the same pairs in
# RegisteredUsers.
DEFAULT_CREDENTIALS = (("orthanc", "orthanc"), ("demo", "demo"),
                       *sorted(orthanc_config.DEFAULT_CREDENTIALS - {("orthanc", "orthanc"), ("demo", "demo")}))


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    """'1.10.1', '1.10.1+dfsg-2+deb12u1', '2:1.12.3-1' -> (1, 10, 1); None when no version can be read."""
    if not version:
        return None
    match = re.match(r"^(?:\d+:)?(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def reported_version(output: str) -> str | None:
    """The version in what ``Orthanc --version`` prints ("<argv0> 1.10.1", then the licence); None for nothing."""
    first = output.strip().splitlines()[:1]
    return first[0].split()[-1] if first else None
