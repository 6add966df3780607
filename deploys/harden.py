"""Everything, driven by host and group data: `pyinfra -y INVENTORY deploys/harden.py`.

See the README's settings table for the switches and their defaults; `orthanc-harden remediate` runs this and
reports per host. One host's error fails that host alone; run with `-y` (without it pyinfra asks, after any failed
host, whether to go on with the others).
"""

from orthanc_harden.deploys import harden

harden()
