"""Everything, driven by host and group data: `pyinfra -y INVENTORY deploys/harden.py`.

See the README's settings table for the switches and their defaults; `orthanc-harden remediate` runs this and
reports per host.
"""

from orthanc_harden.deploys import harden

harden()
