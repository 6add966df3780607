"""Drift correction on a schedule, installed on the control node: `pyinfra -y @local deploys/schedule.py --data
orthanc_harden_schedule_inventory=/etc/orthanc-harden/fleet.py`.

A systemd timer where the control node runs systemd, a cron file otherwise; each run takes a lock, writes a JSON
report and keeps the newest `orthanc_harden_schedule_keep`. See the README's settings table.
"""

from orthanc_harden.deploys import schedule_runs

schedule_runs()
