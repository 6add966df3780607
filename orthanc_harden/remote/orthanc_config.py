"""Orthanc configuration helpers that run ON managed hosts (stdlib only, Python >= 3.6).

This file is sent to hosts as the head of every remote program (see ``program()`` in ``__init__``): keep it
free of third-party imports and of anything that prints.
"""

import difflib
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile

DEFAULT_CREDENTIALS = {("orthanc", "orthanc"), ("demo", "demo"), ("alice", "orthanc"), ("admin", "admin"),
                       ("alice", "alicePassword"), ("orthanc", "password")}
# Only these top-level scalars leave the host: other sections (OrthancPeers, HttpProxy, plugin settings) can
# hold passwords or tokens, so they are reported by key name only.
REPORTED_KEYS = {
    "Name", "HttpServerEnabled", "HttpPort", "DicomServerEnabled", "DicomPort", "DicomAet", "RemoteAccessAllowed",
    "AuthenticationEnabled", "SslEnabled", "SslCertificate", "DicomTlsEnabled", "WebDavEnabled", "ExecuteLuaEnabled",
    "HttpDescribeErrors", "RestApiWriteToFileSystemEnabled", "DicomAlwaysAllowEcho", "DicomAlwaysAllowStore",
    "DicomAlwaysAllowFind", "DicomAlwaysAllowGet", "DicomAlwaysAllowMove", "DicomCheckCalledAet",
    "DicomCheckModalityHost", "OrthancExplorerEnabled", "StorageDirectory", "IndexDirectory",
}
DEFAULT_CONFIG = "/etc/orthanc"
# Orthanc configurations are a few KiB; a path that is a device or a huge file is not read whole.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def run(argv, timeout=15, stdin=None):
    try:
        proc = subprocess.run(argv, input=stdin.encode("utf-8") if stdin is not None else None,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired) as err:
        return 127, "", str(err)


def ufw_active():
    """What `ufw status` calls active, without its tenth of a second of Python: ufw's user input chain is loaded
    (`ufw disable` removes it, and leaves its other chains)."""
    return bool(shutil.which("ufw")) and run(["iptables", "-n", "-L", "ufw-user-input"])[0] == 0


def write_atomically(path, text, mode, uid, gid):
    """Temp file in the same directory with its final owner and mode, fsync, rename, fsync the directory."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".orthanc-harden-", dir=directory)
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


def drop_trailing_commas(text):
    """JsonCpp accepts a trailing comma before a closing brace/bracket; json does not. Only commas outside
    strings go: a password may well contain ',}'. Expects comments already blanked out."""
    out, i, n, in_string = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_string:
            if c == "\\" and i + 1 < n:
                out.append(text[i:i + 2])
                i += 2
                continue
            in_string = c != '"'
        elif c == '"':
            in_string = True
        elif c == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                c = " "
        out.append(c)
        i += 1
    return "".join(out)


def parse_config(text):
    return json.loads(drop_trailing_commas(strip_comments(text)))


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
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            entry["error"] = "larger than %d bytes: not read" % MAX_CONFIG_BYTES
            return entry
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


# --- Orthanc containers, from `docker inspect` data: shared by the control node and the host's own programs. ---

KNOWN_IMAGES = {"jodogne/orthanc": "jodogne", "osimis/orthanc": "osimis", "orthancteam/orthanc": "orthancteam"}
# osimis/orthancteam images generate their configuration at start with these defaults (Orthanc Book, Docker page).
FAMILY_DEFAULTS = {"osimis": {"RemoteAccessAllowed": True, "AuthenticationEnabled": True},
                   "orthancteam": {"RemoteAccessAllowed": True, "AuthenticationEnabled": True}}


def container_family(attrs):
    """The Orthanc image family of a container ("jodogne", "osimis", "orthancteam", "other"), or None when the
    container is not an Orthanc (neither a known image nor an `Orthanc` entrypoint)."""
    image = attrs["Config"].get("Image", "")
    repo = re.sub(r"[:@].*$", "", image.split("/", 1)[1] if image.count("/") >= 2 else image)
    for known, name in KNOWN_IMAGES.items():
        if repo.startswith(known):
            return name
    argv = (attrs["Config"].get("Entrypoint") or []) + (attrs["Config"].get("Cmd") or [])
    if os.path.basename(attrs.get("Path", "")) == "Orthanc" or any(os.path.basename(a) == "Orthanc"
                                                                    for a in argv[:1]):
        return "other"
    return None


def container_config_dir(attrs, family=None):
    """Where Orthanc's JSON files are: env-configured images merge /etc/orthanc; others name it in the command."""
    if family in FAMILY_DEFAULTS:
        return "/etc/orthanc/"
    argv = (attrs["Config"].get("Entrypoint") or []) + (attrs["Config"].get("Cmd") or [])
    positional = [a for a in argv[1:] if not a.startswith("-")]
    target = positional[-1] if positional else "/etc/orthanc/"
    return target if target.endswith("/") or "." not in os.path.basename(target) else os.path.dirname(target)


def container_orthanc_ports(parsed_files, env):
    """Orthanc's HTTP and DICOM ports inside a container ({"HttpPort": 8042, "DicomPort": 4242} by default), from
    its parsed JSON files (in Orthanc's reading order) and its environment (a name -> value mapping)."""
    ports = {"HttpPort": 8042, "DicomPort": 4242}
    for parsed in parsed_files:
        if isinstance(parsed, dict):
            ports.update({key: parsed[key] for key in ports
                          if isinstance(parsed.get(key), int) and not isinstance(parsed.get(key), bool)})
    for key, variable in (("HttpPort", "ORTHANC__HTTP_PORT"), ("DicomPort", "ORTHANC__DICOM_PORT")):
        if str(env.get(variable, "")).isdigit():
            ports[key] = int(env[variable])
    return ports


# --- Minimal textual edits: keep every comment, the key order and every untouched byte. -------------------------

def _skip_blank(text, i):
    """Skip whitespace and comments from i; return the next significant index."""
    n = len(text)
    while i < n:
        if text[i] in " \t\r\n":
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated /* comment")
            i = end + 2
        else:
            break
    return i


def _skip_string(text, i):
    i += 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    raise ValueError("unterminated string")


def _skip_value(text, i):
    if text[i] == '"':
        return _skip_string(text, i)
    if text[i] in "{[":
        depth = 0
        while i < len(text):
            nxt = _skip_blank(text, i)
            if nxt != i:
                i = nxt
                continue
            c = text[i]
            if c == '"':
                i = _skip_string(text, i)
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        raise ValueError("unterminated object or array")
    end = i
    while end < len(text) and text[end] not in ",}] \t\r\n/":
        end += 1
    return end


def members(text):
    """Top-level members as [(key, key_start, value_start, value_end)] and the index of the closing brace."""
    i = _skip_blank(text, 0)
    if i >= len(text) or text[i] != "{":
        raise ValueError("the top level is not a JSON object")
    found, i = [], i + 1
    while True:
        i = _skip_blank(text, i)
        if i < len(text) and text[i] == "}":
            return found, i
        if i >= len(text) or text[i] != '"':
            raise ValueError("expected a key at offset %d" % i)
        key_start, i = i, _skip_string(text, i)
        key = json.loads(text[key_start:i])
        i = _skip_blank(text, i)
        if i >= len(text) or text[i] != ":":
            raise ValueError("expected ':' after %s" % json.dumps(key))
        value_start = _skip_blank(text, i + 1)
        i = _skip_value(text, value_start)
        found.append((key, key_start, value_start, i))
        i = _skip_blank(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
        elif i >= len(text) or text[i] != "}":
            raise ValueError("expected ',' or '}' after %s" % json.dumps(key))


def _dump(value):
    # UTF-8 text rather than \u escapes: not every reader joins escaped surrogate pairs (json5 does not).
    return json.dumps(value, ensure_ascii=False)


def render(value, indent):
    """JSON text for a value; objects one member per line under indent."""
    if isinstance(value, dict) and value:
        inner = ",\n".join("%s  %s : %s" % (indent, _dump(k), _dump(v)) for k, v in value.items())
        return "{\n%s\n%s}" % (inner, indent)
    return _dump(value)


def _only_comments(fragment):
    try:
        return _skip_blank(fragment, 0) == len(fragment)
    except ValueError:  # a block comment that goes on past the line
        return False


def set_key(text, key, value):
    """Set a top-level key: replace only its value's text, or add one member before the closing brace."""
    found, close = members(text)
    for name, key_start, value_start, value_end in found:
        if name == key:
            line_start = text.rfind("\n", 0, key_start) + 1
            indent = text[line_start:key_start] if not text[line_start:key_start].strip() else ""
            return text[:value_start] + render(value, indent) + text[value_end:]
    if not found:
        head = text[:close] if text[:close].endswith("\n") else text[:close] + "\n"
        return head + "  %s : %s\n" % (_dump(key), render(value, "  ")) + text[close:]
    name, key_start, value_start, value_end = found[-1]
    line_start = text.rfind("\n", 0, key_start) + 1
    indent = text[line_start:key_start] if not text[line_start:key_start].strip() else "  "
    member = "%s%s : %s" % (indent, _dump(key), render(value, indent))
    after = _skip_blank(text, value_end)
    if text[after] == ",":  # a trailing comma already follows the last member
        return text[:after + 1] + "\n" + member + "," + text[after + 1:]
    eol = text.find("\n", value_end)
    rest = text[value_end:eol] if eol >= 0 else ""
    if eol >= 0 and _only_comments(rest):
        # Keep trailing comments on the line of the member they belong to.
        return text[:value_end] + "," + rest + "\n" + member + text[eol:]
    return text[:value_end] + ",\n" + member + text[value_end:]


# --- What a change would do, shown without secrets (dry runs, pyinfra's --diff). ---------------------------------

SHOWN_MASK = "*MASKED*"


def masked_text(text):
    """The text with every string value masked but the top-level REPORTED_KEYS: RegisteredUsers holds plain
    passwords (its comments may too: a user commented out), and other sections (OrthancPeers, HttpProxy, plugins)
    may hold more. Keys, numbers, booleans, layout and other comments stay, so a diff of two masked texts still
    shows what changes."""
    out, i, n, stack, top_key = [], 0, len(text), [], None
    while i < n:
        j = _skip_blank(text, i)
        blank = text[i:j]
        if len(stack) > 1 and top_key == "RegisteredUsers":  # a commented-out user is a password too
            blank = re.sub(r"//[^\n]*", "// " + SHOWN_MASK, re.sub(r"/\*.*?\*/", "/* %s */" % SHOWN_MASK, blank,
                                                                   flags=re.S))
        out.append(blank)
        i = j
        if i >= n:
            break
        c = text[i]
        if c == '"':
            end = _skip_string(text, i)
            after = _skip_blank(text, end)
            if stack[-1:] == ["{"] and after < n and text[after] == ":":
                if len(stack) == 1:
                    top_key = json.loads(text[i:end])
                out.append(text[i:end])
            elif len(stack) == 1 and top_key in REPORTED_KEYS:
                out.append(text[i:end])
            else:
                out.append('"%s"' % SHOWN_MASK)
            i = end
            continue
        if c in "{[":
            stack.append(c)
        elif c in "}]" and stack:
            stack.pop()
        out.append(c)
        i += 1
    return "".join(out)


def masked_diff(path, old, new):
    """A unified diff of `path` from `old` to `new` (None: the file does not exist yet), secrets masked."""
    try:
        before = masked_text(old) if old is not None else ""
        after = masked_text(new)
    except ValueError:
        return "--- %s\n+++ %s (planned)\n(the file does not parse: its lines are not shown)\n" % (path, path)
    lines = list(difflib.unified_diff(before.splitlines(True), after.splitlines(True),
                                      fromfile=path if old is not None else "/dev/null",
                                      tofile="%s (planned)" % path))
    if not lines:
        return "--- %s\n+++ %s (planned)\n(only masked values change)\n" % (path, path)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def served_ports(state):
    """The TCP ports a probed host's Orthanc units serve (HTTP and DICOM unless switched off), sorted: the ports
    the firewall restricts. One home for the deploy and the host's combined check, which must ask the same."""
    ports = set()
    for unit in state.get("units", []):
        values = {}
        for entry in state.get("configs", {}).get(unit["config_path"], {}).get("files", []):
            values.update(entry.get("values", {}))
        if values.get("HttpServerEnabled", True):
            ports.add(values.get("HttpPort", 8042))
        if values.get("DicomServerEnabled", True):
            ports.add(values.get("DicomPort", 4242))
    return sorted(p for p in ports if isinstance(p, int))
