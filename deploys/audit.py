"""Read-only audit as a pyinfra deploy: `pyinfra -y INVENTORY deploys/audit.py`.

It reads each host's Orthanc state (one round trip), evaluates the findings catalogue and logs one line per
Orthanc instance. It changes nothing, so pyinfra reports no change on any host; a host whose state cannot be read
(or whose settings are wrong) fails with the reason. For a table, JSON and an exit status that says whether the
fleet is compliant, use `orthanc-harden audit INVENTORY`.
"""

from pyinfra import host, logger

from orthanc_harden.audit import words
from orthanc_harden.runs.audit import audit_host
from orthanc_harden.operations import verdict

for _row in audit_host(host):
    _words = words.summary(_row["findings"])
    if _row["status"] == "failed":
        verdict.failed(name="orthanc-harden audit", control="audit", message=f"orthanc-harden audit: {_row['reason']}")
    elif _row["status"] == "no-orthanc":
        logger.warning(f"[{host.name}] orthanc-harden audit: {_row['status']}: {_row['reason']}")
    else:
        logger.warning(f"[{host.name}] orthanc-harden audit: {_row['instance']} ({_row['kind']}, "
                       f"version {_row['version'] or 'unknown'}): {_row['status']}{': ' + _words if _words else ''}")
