"""Lab hosts set up as real fleets have them (issue #17): each function turns a fresh lab host, over SSH as root,
into one kind of host the first lab never had. Every step is checked: a variant that silently did not apply would
make its test prove nothing."""

from __future__ import annotations

from tests.integration.conftest import must_run

RESEARCH_UNIT = "orthanc\\x2dresearch.service"  # systemd-escaped: 'orthanc-research' written with \x2d
RESEARCH_PORT, RESEARCH_DICOM = 8043, 4243


def sudo_login(client, user: str = "deploy") -> None:
    """An unprivileged login with the lab's key and password-less sudo, as fleets are reached."""
    home, owner = f"/home/{user}", f"-o {user} -g {user}"
    must_run(client, f"id {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}; "
                     f"install -d -m 0700 {owner} {home}/.ssh && "
                     f"install -m 0600 {owner} /root/.ssh/authorized_keys {home}/.ssh/authorized_keys && "
                     f"echo '{user} ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/{user} && "
                     f"chmod 0440 /etc/sudoers.d/{user} && visudo -cq")


def users_in_main_file(client, user: str, password: str) -> None:
    """RegisteredUsers kept in Debian's root:root 0644 orthanc.json, no credentials.json: as many sites have it."""
    must_run(client, "mv /etc/orthanc/credentials.json /root/credentials.json.moved && "
                     f"sed -i '0,/{{/s//{{\\n  \"RegisteredUsers\" : {{ \"{user}\" : \"{password}\" }},/' "
                     "/etc/orthanc/orthanc.json && chown root:root /etc/orthanc/orthanc.json && "
                     "chmod 0644 /etc/orthanc/orthanc.json && systemctl restart orthanc")
    assert "RegisteredUsers" in must_run(client, "cat /etc/orthanc/orthanc.json")


def second_unit(client) -> None:
    """A second Orthanc on the same host under a systemd-escaped unit name, with its own configuration directory,
    ports and storage, vulnerable like the first."""
    conf = "/etc/orthanc-research"
    must_run(client, f"install -d -m 0755 {conf} && install -d -o orthanc -g orthanc /var/lib/orthanc-research && "
                     f"sed -e 's/\"HttpPort\" : 8042/\"HttpPort\" : {RESEARCH_PORT}/' "
                     f"-e 's/\"DicomPort\" : 4242/\"DicomPort\" : {RESEARCH_DICOM}/' "
                     "-e 's|/var/lib/orthanc/db|/var/lib/orthanc-research/db|g' "
                     f"/etc/orthanc/orthanc.json > {conf}/orthanc.json && chmod 0644 {conf}/orthanc.json && "
                     f"grep -q '\"HttpPort\" : {RESEARCH_PORT}' {conf}/orthanc.json")
    unit = ("[Unit]\nDescription=Orthanc for research\nAfter=network.target\n\n[Service]\nUser=orthanc\n"
            f"Group=orthanc\nExecStart=/usr/sbin/Orthanc --logdir=/var/log/orthanc {conf}\nRestart=on-failure\n\n"
            "[Install]\nWantedBy=multi-user.target\n")
    path = f"/etc/systemd/system/{RESEARCH_UNIT}"
    must_run(client, f"cat > '{path}' <<'UNIT'\n{unit}UNIT\n"
                     f"systemctl daemon-reload && systemctl enable --now '{RESEARCH_UNIT}' && "
                     f"for i in $(seq 60); do curl -s -o /dev/null 127.0.0.1:{RESEARCH_PORT}/system && exit 0; "
                     "sleep 1; done; exit 1")


def malformed(client) -> None:
    must_run(client, "echo '{ broken' >> /etc/orthanc/orthanc.json")


def main_pid(client, unit: str) -> str:
    return must_run(client, f"systemctl show -p MainPID --value '{unit}'").strip()

