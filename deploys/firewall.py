"""Orthanc's ports from allowed networks only: `pyinfra -y INVENTORY deploys/firewall.py`.

Driven by `orthanc_harden_allowed_cidrs` and the `orthanc_harden_firewall_*` settings; with
`orthanc_harden_firewall_remove: true` it takes the tool's rules away. A host whose firewall cannot be changed
safely (unsupported, inactive, foreign rule in the way) is left as it was and fails as not compliant. A change is
commit confirmed: a fresh SSH connection after it keeps it, otherwise the host puts its firewall back.
"""

from orthanc_harden.deploys import firewall_rules
from orthanc_harden.operations import verdict

firewall_rules()
verdict.compliant(name="Orthanc firewall compliant", controls=("firewall",))
