# Remote program body: runs after orthanc_config.py on the host (python3 -c auth.py MODE). The request comes on
# standard input as JSON: {"config_path", "users": {name: password}, "users_mode", "disable_remote_access"}.
# MODE "check" prints the plan; "apply" writes it atomically with backups; "restore" puts the backups back.
# Output never holds a password: only file paths, user names and flags.

import sys

BACKUP_SUFFIX = ".orthanc-harden-backup"


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
    return edits, summary


def apply(request):
    edits, summary = plan(request)
    summary["backups"] = {}
    for path, text in sorted(edits.items()):
        st = os.stat(path)
        mode = st.st_mode & 0o7777
        if path == summary["users_file"]:
            mode &= 0o750  # passwords: never readable by others, never writable by the group
            summary["users_file_mode"] = "%04o" % mode
        with open(path, encoding="utf-8") as handle:
            original = handle.read()
        # The backup holds the old passwords: owner-only, whatever the original allowed.
        backup = path + BACKUP_SUFFIX
        write_atomically(backup, original, 0o600, st.st_uid, st.st_gid)
        summary["backups"][path] = backup
        write_atomically(path, text, mode, st.st_uid, st.st_gid)
    summary["changed"] = bool(edits)
    return summary


def restore(request):
    restored = []
    for path in request["files"]:
        backup = path + BACKUP_SUFFIX
        st = os.stat(path)
        with open(backup, encoding="utf-8") as handle:
            write_atomically(path, handle.read(), st.st_mode & 0o7777, st.st_uid, st.st_gid)
        restored.append(path)
    return {"restored": restored}


def main():
    mode = sys.argv[1]
    request = json.loads(sys.stdin.read())
    try:
        if mode == "check":
            edits, summary = plan(request)
            summary["changed"] = bool(edits)
            result = summary
        elif mode == "apply":
            result = apply(request)
        else:
            result = restore(request)
    except PlanError as err:
        result = {"error": str(err)}
    except OSError as err:
        result = {"error": "%s: %s" % (getattr(err, "filename", None) or "configuration", err.strerror)}
    print(json.dumps(result, sort_keys=True))
    # "check" feeds a fact: it reports errors as data; "apply"/"restore" must fail the command.
    if mode != "check" and "error" in result:
        sys.exit(1)


if __name__ == "__main__":
    main()
