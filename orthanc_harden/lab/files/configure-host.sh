#!/bin/sh
# Runs once inside the image build: plant the CVE-2025-0896 state and make systemd boot cleanly in a container.
set -eu

# Vulnerable on purpose, and explicit: remote access on, authentication off, no registered users.
conf=/etc/orthanc/orthanc.json
grep -q '"RemoteAccessAllowed" : false,' "$conf"
sed -i 's|"RemoteAccessAllowed" : false,|"RemoteAccessAllowed" : true,\n  "AuthenticationEnabled" : false,|' "$conf"
test "$(grep -c '^  "RemoteAccessAllowed" : true,$' "$conf")" = 1
test "$(grep -c '^  "AuthenticationEnabled" : false,$' "$conf")" = 1

# Each lab host gets its own SSH host keys when it is created.
rm -f /etc/ssh/ssh_host_*
cat > /etc/ssh/sshd_config.d/orthanc-harden-lab.conf <<'SSHD'
# orthanc-harden lab: key-only root login for the test controller
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
SSHD
mkdir -p /root/.ssh && chmod 0700 /root/.ssh

# Units that need a real kernel or console; masked so the container boots without failed units.
for unit in getty.target console-getty.service systemd-udevd.service systemd-modules-load.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount systemd-remount-fs.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "/etc/systemd/system/$unit"
done
systemctl enable orthanc.service ssh.service >/dev/null 2>&1 || true
: > /etc/machine-id
dpkg-query -W -f='${Version}' orthanc > /etc/orthanc-harden-lab-orthanc-version
