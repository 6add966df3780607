"""pyinfra inventory for the local lab: `orthanc-harden lab up` writes the state this reads; no editing needed.

    pyinfra inventories/lab.py exec -- cat /etc/orthanc/orthanc.json
"""

import os

from orthanc_harden.lab.inventory import groups as _groups

_lab = _groups(os.environ.get("ORTHANC_HARDEN_LAB", "default"))

package_hosts = _lab["package_hosts"]
container_engines = _lab["container_engines"]
