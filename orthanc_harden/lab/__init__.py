"""The Docker lab of vulnerable Orthanc hosts (`orthanc-harden lab up | status | down`)."""

DEFAULT_MIRROR = "http://deb.debian.org/debian"
