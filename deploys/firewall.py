"""Orthanc's ports from allowed networks only: `pyinfra -y INVENTORY deploys/firewall.py`.

Driven by `orthanc_harden_allowed_cidrs` and the `orthanc_harden_firewall_*` settings; with
`orthanc_harden_firewall_remove: true` it takes the tool's rules away.
"""

from orthanc_harden.deploys import firewall_rules

firewall_rules()
