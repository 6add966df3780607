"""The closed sets of words the tool reports with: a control's outcome, a remediated host's status, an audited
instance's status, a finding's status and severity.

Each is an ``enum.StrEnum``: a member is its word, so JSON reports, tables and comparisons with plain strings
(reports read back, call sites passing ``"changed"``) see exactly the same text, and a misspelt word fails where it
is written instead of in a report.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """What one control concluded on one host (``outcomes``)."""

    OK = "ok"
    CHANGED = "changed"
    NOT_COMPLIANT = "not-compliant"  # nothing the tool can do, e.g. no package reaches the floor
    FAILED = "failed"
    WAIVED = "waived"


class HostStatus(StrEnum):
    """A host's row in a remediate report, in the order of the report's summary."""

    CHANGED = "changed"
    COMPLIANT = "compliant"
    WOULD_CHANGE = "would-change"
    NOT_COMPLIANT = "not-compliant"
    FAILED = "failed"


class InstanceStatus(StrEnum):
    """An Orthanc instance's row in an audit report, in the order of the report's summary."""

    COMPLIANT = "compliant"
    FINDINGS = "findings"
    FAILED = "failed"
    NO_ORTHANC = "no-orthanc"


class FindingStatus(StrEnum):
    FAIL = "fail"
    WAIVED = "waived"


class Severity(StrEnum):
    """Worst first."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"
