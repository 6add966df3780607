"""Upgrade package-installed Orthanc to the version floor: `pyinfra -y INVENTORY deploys/upgrade.py`.

Only the upgrade; `deploys/harden.py` also enables authentication, the advisory's fallback where no fixed
package is offered, and fails such hosts at the end so the exit status says they are not compliant.
"""

from orthanc_harden.deploys import upgrade_packages

upgrade_packages()
