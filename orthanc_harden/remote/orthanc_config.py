"""Orthanc configuration helpers that run ON managed hosts (stdlib only, Python >= 3.6).

This file is sent to hosts as the head of every remote program (see ``program()`` in ``__init__``): keep it
free of third-party imports and of anything that prints.
"""

import glob
import grp
import hashlib
import json
import os
import pwd
import re
import subprocess

DEFAULT_CREDENTIALS = {("orthanc", "orthanc"), ("demo", "demo"), ("alice", "orthanc"), ("admin", "admin"),
                       ("alice", "alicePassword"), ("orthanc", "password")}
# Only these top-level scalars leave the host: other sections (OrthancPeers, HttpProxy, plugin settings) can
# hold passwords or tokens, so they are reported by key name only.
REPORTED_KEYS = {
    "Name", "HttpServerEnabled", "HttpPort", "DicomServerEnabled", "DicomPort", "DicomAet", "RemoteAccessAllowed",
    "AuthenticationEnabled", "SslEnabled", "DicomTlsEnabled", "WebDavEnabled", "ExecuteLuaEnabled",
    "HttpDescribeErrors", "RestApiWriteToFileSystemEnabled", "DicomAlwaysAllowEcho", "DicomAlwaysAllowStore",
    "DicomAlwaysAllowFind", "DicomAlwaysAllowGet", "DicomAlwaysAllowMove", "DicomCheckCalledAet",
    "DicomCheckModalityHost", "OrthancExplorerEnabled", "StorageDirectory", "IndexDirectory",
}
DEFAULT_CONFIG = "/etc/orthanc"


def run(argv, timeout=15):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, "", str(err)


def strip_comments(text):
    """Blank out // and /* */ comments outside strings, keeping line numbers for error messages."""
    out, i, n, in_string = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def parse_config(text):
    cleaned = strip_comments(text)
    # JsonCpp accepts a trailing comma before a closing brace/bracket; json does not.
    cleaned = re.sub(r",(\s*[}\]])", r" \1", cleaned)
    return json.loads(cleaned)


def file_meta(path):
    st = os.stat(path)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return {"owner": owner, "group": group, "mode": "%04o" % (st.st_mode & 0o7777)}


def describe(entry, text):
    """Fill a file entry from its text: keys, whitelisted values, user names; passwords are dropped here."""
    try:
        data = parse_config(text)
    except ValueError as err:
        entry["parse_error"] = "line %s: %s" % (getattr(err, "lineno", "?"), getattr(err, "msg", str(err)))
        return entry
    if not isinstance(data, dict):
        entry["parse_error"] = "line 1: the top level is not a JSON object"
        return entry
    entry["keys"] = list(data)
    entry["values"] = {k: v for k, v in data.items()
                       if k in REPORTED_KEYS and (v is None or isinstance(v, (bool, int, float, str)))}
    users = data.get("RegisteredUsers")
    if isinstance(users, dict):
        entry["users"] = sorted(users)
        entry["default_credentials"] = sorted(u for u, p in users.items() if (u, p) in DEFAULT_CREDENTIALS)
    return entry


def read_config_file(path):
    entry = {"path": path}
    try:
        entry.update(file_meta(path))
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        entry["error"] = "cannot read: %s" % err.strerror
        return entry
    entry["sha256"] = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["parse_error"] = "line ?: not UTF-8 text"
        return entry
    return describe(entry, text)


def read_config(path):
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.json")))
        return {"path": path, "kind": "dir", "files": [read_config_file(f) for f in files]}
    if os.path.isfile(path):
        return {"path": path, "kind": "file", "files": [read_config_file(path)]}
    return {"path": path, "kind": "missing", "files": []}
