"""After a remediation of the lab: which Orthanc version each member runs now and whether its seeded DICOM
instances are all still there (the demo's last word on the upgrade: data kept).

    python -m orthanc_harden.lab.kept USERS_FILE   # the users JSON the demo remediated with
"""

from __future__ import annotations

import json
import sys

import requests

from . import state


def rows(lab: str, user: str, password: str) -> list[dict]:
    """One row per lab member: name, kind, whether it started below 1.5.8, version now, seeded instances kept."""
    data = state.load(state.lab_dir(lab))
    if data is None:
        raise SystemExit(f"no lab named {lab!r} is up")
    found = []
    for entry in data["hosts"] + data["containers"]:
        url = f"http://127.0.0.1:{entry['http_port']}"
        try:
            version = requests.get(f"{url}/system", auth=(user, password), timeout=10).json().get("Version")
            stored = set(requests.get(f"{url}/instances", auth=(user, password), timeout=10).json())
        except (requests.RequestException, ValueError) as err:
            version, stored = f"not answering ({type(err).__name__})", set()
        seeded = set(entry["seeded_instances"])
        found.append({"name": entry["name"], "kind": entry["kind"], "old": entry.get("old", False),
                      "version": version, "seeded": len(seeded), "kept": len(seeded & stored)})
    return found


def main(argv: list[str]) -> int:
    users = json.loads(open(argv[0], encoding="utf-8").read())
    user = sorted(users)[0]
    lab = argv[1] if len(argv) > 1 else state.DEFAULT_LAB
    found = rows(lab, user, users[user])
    for row in found:
        was = "below 1.5.8 before the run" if row["old"] else "1.10.1 before the run"
        print(f"{row['name']} ({row['kind']}, {was}): Orthanc {row['version']} now; "
              f"{row['kept']} of {row['seeded']} seeded DICOM instances still there")
    return 0 if all(row["kept"] == row["seeded"] for row in found) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
