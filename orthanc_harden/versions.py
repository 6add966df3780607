"""Package version order: what "newer", "at or above the floor" and "never downgrade" mean."""

from __future__ import annotations

import re

from debian.debian_support import Version

from .orthanc import version_tuple


def sort_key(version: str) -> Version:
    """dpkg's ordering. rpm's differs only for versions using '^' or letters after digits across segments,
    which no Orthanc build uses; the floor itself is compared on the upstream part alone."""
    return Version(version)


def newer(candidate: str, installed: str) -> bool:
    return sort_key(candidate) > sort_key(installed)


def at_least(version: str | None, floor: str) -> bool:
    """The upstream part of a package version ('1.10.1' of '1.10.1+dfsg-2+deb12u1') against a floor ('1.5.8')."""
    have, want = version_tuple(version), version_tuple(floor)
    return bool(have and want and have >= want)


def upstream(version: str) -> str:
    """'1:1.10.1+dfsg-2+deb12u1' -> '1.10.1': no epoch, no package revision, no repack suffix."""
    bare = version.split(":", 1)[-1]
    if "-" in bare:
        bare = bare.rsplit("-", 1)[0]
    return re.split(r"[+~]", bare, maxsplit=1)[0]


def matches_pin(version: str, pin: str) -> bool:
    """A pin is a full package version ('1.10.1+dfsg-2+deb12u1') or an upstream one ('1.10.1')."""
    return version == pin or upstream(version) == pin
