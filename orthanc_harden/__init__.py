"""orthanc-harden: find and fix CVE-2025-0896 across a fleet of Orthanc servers with pyinfra."""

__version__ = "0.1.0"
