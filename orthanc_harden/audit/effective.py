"""Effective configuration of one Orthanc from its per-file, non-secret values (as the probes report them)."""

from __future__ import annotations

from ..orthanc import DICOM_PORT, FIXED_IN, HTTP_PORT, version_tuple

# Defaults of Debian's Orthanc 1.10.1 for the keys the findings look at.
DEFAULTS = {
    "RemoteAccessAllowed": False, "HttpPort": HTTP_PORT, "DicomPort": DICOM_PORT, "SslEnabled": False,
    "WebDavEnabled": True, "ExecuteLuaEnabled": False, "HttpDescribeErrors": True, "DicomAlwaysAllowEcho": True,
    "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": False, "DicomAlwaysAllowGet": False,
    "DicomAlwaysAllowMove": False, "DicomCheckCalledAet": False, "DicomServerEnabled": True,
    "HttpServerEnabled": True, "RestApiWriteToFileSystemEnabled": False,
}



def effective(files: list[dict], version: str | None) -> dict:
    """Merge per-file values the way Orthanc does (every file of a directory, a key in two files is fatal)."""
    key_files: dict[str, list[str]] = {}
    values: dict = {}
    users: list[str] = []
    default_credentials: list[str] = []
    user_files = []
    parse_errors = {}
    for entry in files:
        if "parse_error" in entry or "error" in entry:
            parse_errors[entry["path"]] = entry.get("parse_error") or entry["error"]
            continue
        for key in entry.get("keys", []):
            key_files.setdefault(key, []).append(entry["path"])
        values.update(entry.get("values", {}))
        if "users" in entry:
            users += entry["users"]
            default_credentials += entry.get("default_credentials", [])
            user_files.append({k: entry.get(k) for k in ("path", "owner", "group", "mode")})
    merged = {**DEFAULTS, **values}
    if "AuthenticationEnabled" not in values:
        parsed = version_tuple(version)
        # Unknown version: assume the pre-1.5.8 default (off), the unsafe reading.
        fixed = bool(parsed and parsed >= version_tuple(FIXED_IN))
        merged["AuthenticationEnabled"] = fixed and bool(merged["RemoteAccessAllowed"])
    return {
        "effective": merged,
        "explicit": sorted(values),
        "key_files": key_files,
        "duplicates": {k: v for k, v in key_files.items() if len(v) > 1},
        "parse_errors": parse_errors,
        "users": sorted(users),
        "default_credentials": sorted(default_credentials),
        "user_files": user_files,
    }
