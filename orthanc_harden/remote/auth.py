# Remote program body: runs after orthanc_config.py on the host (python3 -c auth.py MODE). The request comes on
# standard input as JSON: {"config_path", "users": {name: password}, "users_mode", "disable_remote_access"}.
# MODE "check" prints the plan; "apply" writes it atomically with backups; "restore" puts the backups back;
# "commit" drops the rollback backups once Orthanc is healthy. Output never holds a password: only file paths,
# user names, modes and flags.
#
# Two copies are kept of an edited file, both 0600 and owned as the file was: NAME.orthanc-harden-original, the
# file as it was before orthanc-harden first changed it (written once, never overwritten: the way back), and
# NAME.orthanc-harden-backup, the state before the change under way, removed once the change is healthy (so a
# rotated password does not linger). Neither name ends in .json, which Orthanc would load.

import sys

BACKUP_SUFFIX = ".orthanc-harden-backup"
ORIGINAL_SUFFIX = ".orthanc-harden-original"


class PlanError(Exception):
    pass


def load_directory(config_path):
    if os.path.isdir(config_path):
        paths = sorted(glob.glob(os.path.join(config_path, "*.json")))
    elif os.path.isfile(config_path):
        paths = [config_path]
    else:
        raise PlanError("configuration path %s does not exist" % config_path)
    texts = {}
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            texts[path] = handle.read()
    if not paths:
        raise PlanError("no *.json file in %s" % config_path)
    return parse_texts(texts)


def parse_texts(texts):
    """Parse every file the editor may touch; the texts can come from a host's disk or a container's archive."""
    parsed = {}
    for path in sorted(texts):
        try:
            parsed[path] = parse_config(texts[path])
            members(texts[path])  # the editor must understand every file it may touch
        except ValueError as err:
            raise PlanError("%s does not parse (%s); fix it first, nothing was changed" % (path, err)) from None
        if not isinstance(parsed[path], dict):
            raise PlanError("%s: the top level is not a JSON object" % path)
    return texts, parsed


def plan(request, loaded=None):
    """The edits (path -> new text) and a password-free summary; `loaded` is (texts, parsed) read elsewhere."""
    config_path = request["config_path"]
    texts, parsed = loaded if loaded is not None else load_directory(config_path)
    key_files = {}
    for path in sorted(parsed):
        for key in parsed[path]:
            key_files.setdefault(key, []).append(path)
    duplicated = sorted(k for k, v in key_files.items() if len(v) > 1)
    if duplicated:
        raise PlanError("key %s is defined in %s (Orthanc refuses to start); fix it first, nothing was changed"
                        % (duplicated[0], " and ".join(key_files[duplicated[0]])))
    paths = sorted(parsed)
    main = next((p for p in paths if os.path.basename(p) == "orthanc.json"), paths[0])
    # Not in `parsed` when config_path names a single file: then the main file takes the users.
    credentials = os.path.join(config_path, "credentials.json")
    users_file = (key_files.get("RegisteredUsers") or [credentials if credentials in parsed else main])[0]
    auth_file = (key_files.get("AuthenticationEnabled") or key_files.get("RemoteAccessAllowed") or [main])[0]
    remote_file = (key_files.get("RemoteAccessAllowed") or [main])[0]

    current = parsed[users_file].get("RegisteredUsers", {})
    if not isinstance(current, dict):
        raise PlanError("%s: RegisteredUsers is not an object" % users_file)
    wanted = dict(request["users"])
    if request.get("users_mode", "exact") == "merge":
        wanted = dict(current, **wanted)
    edits, summary = {}, {"users_file": users_file, "auth_file": auth_file, "files": []}
    if current != wanted:
        edits[users_file] = set_key(texts[users_file], "RegisteredUsers", wanted)
        summary["users_added"] = sorted(set(wanted) - set(current))
        summary["users_removed"] = sorted(set(current) - set(wanted))
        summary["users_updated"] = sorted(u for u in set(wanted) & set(current) if wanted[u] != current[u])
    if parsed[auth_file].get("AuthenticationEnabled") is not True:
        edits[auth_file] = set_key(edits.get(auth_file, texts[auth_file]), "AuthenticationEnabled", True)
        summary["authentication"] = "enabled"
    if request.get("disable_remote_access") and parsed[remote_file].get("RemoteAccessAllowed") is not False:
        edits[remote_file] = set_key(edits.get(remote_file, texts[remote_file]), "RemoteAccessAllowed", False)
        summary["remote_access"] = "disabled"
    intended = {}
    intended.setdefault(users_file, {})["RegisteredUsers"] = wanted
    intended.setdefault(auth_file, {})["AuthenticationEnabled"] = True
    if request.get("disable_remote_access"):
        intended.setdefault(remote_file, {})["RemoteAccessAllowed"] = False
    for path, text in edits.items():
        # Everything but the intended keys must be exactly as before: the edit is checked, not trusted.
        if dict(parsed[path], **intended[path]) != parse_config(text):
            raise PlanError("internal check failed for %s: the edit changed more than intended" % path)
    summary["files"] = sorted(edits)
    # Masked here, on the host: a dry run and pyinfra's --diff show the change, never a password.
    summary["diffs"] = {path: masked_diff(path, texts[path], edits[path]) for path in sorted(edits)}
    if loaded is None:  # on the host: how each file is and will be owned (a container's files are not here)
        summary["meta"] = {path: stat_of(path) for path in edits}
        if users_file in edits:
            summary["users_access"] = users_file_access(users_file, request.get("service"))
    return edits, summary


def stat_of(path):
    st = os.stat(os.path.realpath(path))
    return [st.st_mode & 0o7777, st.st_uid, st.st_gid]


def service_identity(service):
    """The unit's User= and Group= (None each when unset or without systemd)."""
    if not service or not shutil.which("systemctl"):
        return None, None
    code, out, _ = run(["systemctl", "show", "--no-pager", "-p", "User", "-p", "Group", "--", service])
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if code == 0 else {}
    return fields.get("User") or None, fields.get("Group") or None


def users_file_access(path, service):
    """[mode, gid] for the file that holds the passwords: readable by the service and by no one else. Orthanc
    must still read its configuration afterwards: a root:root 0644 orthanc.json of a unit with User=orthanc
    becomes root:orthanc 0640, not 0640 root:root (which would stop Orthanc at its restart)."""
    st = os.stat(os.path.realpath(path))
    mode = st.st_mode & 0o7777 & 0o750  # never others, never group-write
    user, group = service_identity(service)
    if not user or user == "root":
        return [mode | 0o600, st.st_gid]
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise PlanError("%s runs as user %s, which does not exist here; nothing was changed"
                        % (service, user)) from None
    if entry.pw_uid == st.st_uid:
        return [mode | 0o400, st.st_gid]
    if group:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            raise PlanError("%s runs as group %s, which does not exist here; nothing was changed"
                            % (service, group)) from None
    else:
        gid = entry.pw_gid
    if gid == 0:
        raise PlanError("%s (user %s) could read %s only through group root or by others: give the unit its own "
                        "Group=, nothing was changed" % (service, user, path))
    return [(mode & 0o700) | 0o640, gid]


def keep_original(target, text, st):
    """The file as it was before orthanc-harden's first change, once: never overwritten afterwards."""
    original = target + ORIGINAL_SUFFIX
    if not os.path.lexists(original):
        write_atomically(original, text, 0o600, st.st_uid, st.st_gid)
    return original


def apply(request):
    edits, summary = plan(request)
    summary["backups"], summary["originals"] = {}, {}
    access = summary.get("users_access")
    for path, text in sorted(edits.items()):
        target = os.path.realpath(path)  # a symlinked file is edited where it is, the link stays a link
        st = os.stat(target)
        mode, gid = st.st_mode & 0o7777, st.st_gid
        if path == summary["users_file"] and access:
            mode, gid = access
            summary["users_file_mode"] = "%04o" % mode
        with open(target, encoding="utf-8") as handle:
            original = handle.read()
        # Both copies may hold old passwords: owner-only, whatever the file allowed.
        summary["originals"][path] = keep_original(target, original, st)
        backup = target + BACKUP_SUFFIX
        write_atomically(backup, original, 0o600, st.st_uid, st.st_gid)
        summary["backups"][path] = backup
        write_atomically(target, text, mode, st.st_uid, gid)
    if not request.get("keep_backups", True):
        commit({"files": sorted(edits)})
    summary["changed"] = bool(edits)
    return summary


def restore(request):
    """Put each file back exactly: content from the backup, mode and owner as they were before the change."""
    restored = []
    for path in request["files"]:
        target = os.path.realpath(path)
        backup = target + BACKUP_SUFFIX
        st = os.stat(backup)
        mode, uid, gid = (request.get("meta") or {}).get(path) or [os.stat(target).st_mode & 0o7777, st.st_uid,
                                                                    st.st_gid]
        with open(backup, encoding="utf-8") as handle:
            write_atomically(target, handle.read(), mode, uid, gid)
        os.unlink(backup)
        restored.append(path)
    return {"restored": restored}


def commit(request):
    """The change is healthy: the state before it is no longer needed (the original stays)."""
    for path in request["files"]:
        try:
            os.unlink(os.path.realpath(path) + BACKUP_SUFFIX)
        except FileNotFoundError:
            pass
    return {"committed": list(request["files"])}


def answer(mode, request):
    """The program's JSON answer to `request` in `mode`; errors are reported as data ({"error": ...})."""
    try:
        if mode == "check":
            edits, summary = plan(request)
            summary["changed"] = bool(edits)
            result = summary
        elif mode == "apply":
            result = apply(request)
        elif mode == "commit":
            result = commit(request)
        else:
            result = restore(request)
    except PlanError as err:
        result = {"error": str(err)}
    except OSError as err:
        result = {"error": "%s: %s" % (getattr(err, "filename", None) or "configuration", err.strerror)}
    return result


def main():
    mode = sys.argv[1]
    result = answer(mode, json.loads(sys.stdin.read()))
    print(json.dumps(result, sort_keys=True))
    # "check" feeds a fact: it reports errors as data; "apply"/"restore" must fail the command.
    if mode != "check" and "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    main()
