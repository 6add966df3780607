"""Authentication on every package-installed Orthanc: `pyinfra -y INVENTORY deploys/auth.py`.

Users come from the host's `orthanc_harden_users_ref` (see README, Settings), resolved on the control node once
per run. A host whose reference does not resolve fails with the cause, unchanged; the other hosts go on.
"""

from orthanc_harden.deploys import authentication

authentication()
