# Remote program body: runs after orthanc_config.py on the host (python3 -c PROGRAM check|apply|remove), with a
# JSON request on stdin: {"ports": [8042, 4242], "cidrs": [...], "backend": "auto", "enable": false,
# "ssh_port": null, "token": "...", "confirm_seconds": 120} (a token arms the revert of firewall_guard.py).
# Restricts Orthanc's ports with the firewall the host already uses and manages only the rules that carry
# the orthanc-harden tag (a ufw comment, an nftables table, an iptables chain and comment).

import ipaddress
import shutil
import sys

TAG = "orthanc-harden"
SSH_TAG = "orthanc-harden-ssh"
NFT_TABLE = "orthanc_harden"
NFT_FILE = "/etc/orthanc-harden/nftables.nft"
NFT_CONF = "/etc/nftables.conf"
NFT_INCLUDE = 'include "%s"  # orthanc-harden' % NFT_FILE
CHAIN = "ORTHANC-HARDEN"


class FirewallError(Exception):
    """Bad request or a failed command: the host fails."""


class Unsupported(FirewallError):
    """The host's firewall situation is outside what may be changed safely: reported, nothing changed."""


def must(argv, what, timeout=60, stdin=None):
    code, out, err = run(argv, timeout=timeout, stdin=stdin)
    if code != 0:
        lines = [line.strip() for line in (err or out).splitlines() if line.strip()]
        cause = next((line for line in lines if "Error" in line or line.startswith("ERROR")), None)
        raise FirewallError("%s failed: %s" % (what, cause or (lines[-1] if lines else "exit %d" % code)))
    return out


def split_cidrs(cidrs):
    v4, v6 = [], []
    for cidr in cidrs:
        net = ipaddress.ip_network(cidr, strict=False)
        (v4 if net.version == 4 else v6).append(str(net))
    return v4, v6


# --- detection ---------------------------------------------------------------------------------------------------

def detect():
    """(backend, active) in the order of the decision table; an inactive ufw/firewalld is reported, not used."""
    if fw_running():
        return "firewalld", True
    if ufw_active():
        return "ufw", True
    if shutil.which("nft") and os.path.exists(NFT_CONF) and \
            run(["systemctl", "is-enabled", "nftables"])[1].strip() == "enabled":
        return "nftables", True
    if shutil.which("iptables-save") and iptables_in_use(run(["iptables-save", "-t", "filter"])[1]):
        return "iptables", True
    if shutil.which("ufw"):
        return "ufw", False
    if shutil.which("firewall-cmd"):
        return "firewalld", False
    return "none", False


def iptables_in_use(save_output):
    """Rules of someone's own in INPUT, or a DROP policy. `ufw disable` leaves INPUT jumping to its now-empty ufw-*
    chains: that is an inactive ufw, not an iptables firewall."""
    for line in save_output.splitlines():
        if line.startswith("-A INPUT") and not line.split(" -j ")[-1].startswith("ufw"):
            return True
    return ":INPUT DROP" in save_output


# --- ufw ---------------------------------------------------------------------------------------------------------

def _ufw_tuples(path):
    rules = []
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except OSError:
        return rules
    for line in lines:
        if not line.startswith("### tuple ### "):
            continue
        fields = line[len("### tuple ### "):].split()
        comment = ""
        for field in fields:
            if field.startswith("comment="):
                try:
                    comment = bytes.fromhex(field[len("comment="):]).decode("utf-8", "replace")
                except ValueError:
                    comment = field
        # action proto dport dst sport src direction
        rules.append({"action": fields[0], "proto": fields[1], "port": fields[2], "src": fields[5],
                      "comment": comment})
    return rules


def ufw_ipv6():
    """ufw manages IPv6 only with IPV6=yes in /etc/default/ufw; otherwise it refuses every IPv6 rule."""
    for line in (_read("/etc/default/ufw") or "IPV6=yes").splitlines():
        if line.strip().startswith("IPV6="):
            return line.split("=", 1)[1].strip().strip("\"'").lower() == "yes"
    return False


def _ufw_desired(ports, v4, v6):
    def family(cidrs, anywhere):
        allows = [{"action": "allow", "proto": "tcp", "port": str(p), "src": c} for p in ports for c in cidrs]
        denies = [{"action": "deny", "proto": "tcp", "port": str(p), "src": anywhere} for p in ports]
        return allows + denies
    return {"v4": family([c if not c.endswith("/32") else c[:-3] for c in v4], "0.0.0.0/0"),
            "v6": family([c if not c.endswith("/128") else c[:-4] for c in v6], "::/0") if ufw_ipv6() else []}


def _strip(rule):
    return {k: rule[k] for k in ("action", "proto", "port", "src")}


def ufw_notes(v6):
    if v6 and not ufw_ipv6():
        return ["IPv6 networks %s not added: ufw has IPv6 off (IPV6=no in /etc/default/ufw), so it neither "
                "filters nor allows IPv6 on Orthanc's ports" % ", ".join(v6)]
    return []


def ufw_plan(ports, v4, v6):
    current = {"v4": _ufw_tuples("/etc/ufw/user.rules"), "v6": _ufw_tuples("/etc/ufw/user6.rules")}
    desired = _ufw_desired(ports, v4, v6)
    problems = []
    changed = False
    for fam in ("v4", "v6") if ufw_ipv6() else ("v4",):
        ours = [_strip(r) for r in current[fam] if r["comment"] == TAG]
        leading = [_strip(r) for r in current[fam][:len(ours)] if r["comment"] == TAG]
        if ours != desired[fam] or leading != ours:
            changed = True
        for rule in current[fam]:
            if rule["comment"] in (TAG, SSH_TAG) or rule["action"] != "allow":
                continue
            if rule["port"] in [str(p) for p in ports] and rule["src"] in ("0.0.0.0/0", "::/0"):
                problems.append("ufw rule 'allow %s/%s' (not ours) opens port %s to every source and ufw keeps "
                                "one rule per port and source: delete it (ufw delete allow %s/%s) and re-run"
                                % (rule["port"], rule["proto"], rule["port"], rule["port"], rule["proto"]))
    families = ("v4", "v6") if ufw_ipv6() else ("v4",)
    return {"changed": changed, "problems": sorted(set(problems)), "rules": desired, "notes": ufw_notes(v6),
            "current_rules": [_ufw_text(r) for fam in families for r in current[fam] if r["comment"] == TAG],
            "wanted_rules": [_ufw_text(r) for fam in families for r in desired[fam]]}


def _ufw_text(rule):
    """A rule as the ufw command that adds it (what a dry run shows)."""
    return "ufw " + " ".join(_ufw_rule_args(rule)) + " comment " + TAG


def _ufw_rule_args(rule):
    return [rule["action"], "proto", rule["proto"], "from", rule["src"], "to", "any", "port", rule["port"]]


def _ufw_delete_ours(tags):
    """By rule, not by number: `ufw status numbered` lists nothing while ufw is inactive."""
    for fam in ("v4", "v6") if ufw_ipv6() else ("v4",):
        path = "/etc/ufw/user.rules" if fam == "v4" else "/etc/ufw/user6.rules"
        for rule in _ufw_tuples(path):
            if rule["comment"] in tags:
                must(["ufw", "--force", "delete"] + _ufw_rule_args(rule), "ufw delete")


def ufw_apply(ports, v4, v6):
    """Allows first, then the denies right below them, so no moment has a deny without its allows; each family's
    rules lead its list (a v6 rule's position counts after every v4 rule)."""
    _ufw_delete_ours([TAG])
    desired = _ufw_desired(ports, v4, v6)
    for fam, path in (("v4", "/etc/ufw/user.rules"), ("v6", "/etc/ufw/user6.rules")):
        allows = [r for r in desired[fam] if r["action"] == "allow"]
        for rule in reversed(allows):
            must(["ufw", "prepend"] + _ufw_rule_args(rule) + ["comment", TAG], "ufw allow")
        for offset, rule in enumerate(r for r in desired[fam] if r["action"] == "deny"):
            before = len(_ufw_tuples("/etc/ufw/user.rules")) if fam == "v6" else 0
            position = before + len(allows) + offset + 1
            if len(_ufw_tuples(path)) >= len(allows) + offset + 1:
                command = ["ufw", "insert", str(position)]
            else:
                command = ["ufw"]  # nothing below: insert refuses a position past the end, append instead
            must(command + _ufw_rule_args(rule) + ["comment", TAG], "ufw deny")


def ufw_enable(ssh_ports):
    for port in ssh_ports:
        must(["ufw", "allow", "proto", "tcp", "to", "any", "port", str(port), "comment", SSH_TAG], "ufw allow ssh")
    must(["ufw", "--force", "enable"], "ufw enable")


# --- nftables ----------------------------------------------------------------------------------------------------

def nft_ruleset(ports, v4, v6):
    portset = ", ".join(str(p) for p in ports)

    def nft_set(name, kind, cidrs):
        elements = " elements = { %s }" % ", ".join(cidrs) if cidrs else ""
        return "  set %s { type %s; flags interval;%s }\n" % (name, kind, elements)
    return ("# orthanc-harden: Orthanc's ports, allowed sources only (managed file: changes are replaced)\n"
            "table inet %s {\n" % NFT_TABLE
            + nft_set("allowed_v4", "ipv4_addr", v4) + nft_set("allowed_v6", "ipv6_addr", v6)
            + "  chain input {\n    type filter hook input priority -10; policy accept;\n"
            "    tcp dport { %s } ip saddr @allowed_v4 accept\n" % portset
            + "    tcp dport { %s } ip6 saddr @allowed_v6 accept\n" % portset
            + "    tcp dport { %s } drop\n  }\n}\n" % portset)


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def nft_plan(ports, v4, v6):
    wanted = nft_ruleset(ports, v4, v6)
    conf = _read(NFT_CONF) or ""
    live = run(["nft", "list", "table", "inet", NFT_TABLE])[0] == 0
    current = _read(NFT_FILE)
    changed = current != wanted or NFT_INCLUDE not in conf.splitlines() or not live
    files = {NFT_FILE: [current, wanted]} if current != wanted else {}
    if NFT_INCLUDE not in conf.splitlines():
        files[NFT_CONF] = [conf, conf.rstrip("\n") + "\n\n" + NFT_INCLUDE + "\n"]
    return {"changed": changed, "problems": [], "rules": wanted.splitlines(), "files": files,
            "current_rules": _nft_rule_lines(current or "") if live else [],
            "wanted_rules": _nft_rule_lines(wanted)}


def _nft_rule_lines(text):
    return [line.strip() for line in text.splitlines() if line.strip().startswith(("tcp ", "set "))]


def _write(path, text):
    """Atomically, keeping an existing file's owner and mode (root-owned 0644 for a new one)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        st = os.stat(path)
        mode, uid, gid = st.st_mode & 0o7777, st.st_uid, st.st_gid
    except FileNotFoundError:
        mode, uid, gid = 0o644, 0, 0
    write_atomically(path, text, mode, uid, gid)


def nft_apply(ports, v4, v6):
    wanted = nft_ruleset(ports, v4, v6)
    transaction = "table inet %s\ndelete table inet %s\n%s" % (NFT_TABLE, NFT_TABLE, wanted)
    must(["nft", "-c", "-f", "-"], "nft -c (check)", stdin=transaction)
    conf = _read(NFT_CONF)
    if conf is None:
        raise FirewallError("%s is missing: nftables has no persistent configuration here" % NFT_CONF)
    _write(NFT_FILE, wanted)
    if NFT_INCLUDE not in conf.splitlines():
        new_conf = conf.rstrip("\n") + "\n\n" + NFT_INCLUDE + "\n"
        must(["nft", "-c", "-f", "-"], "nft -c of %s with the include" % NFT_CONF, stdin=new_conf)
        _write(NFT_CONF, new_conf)
    must(["nft", "-f", "-"], "nft -f", stdin=transaction)


def nft_remove():
    conf = _read(NFT_CONF)
    if conf is not None and NFT_INCLUDE in conf.splitlines():
        lines = [line for line in conf.splitlines() if line != NFT_INCLUDE]
        _write(NFT_CONF, "\n".join(lines).rstrip("\n") + "\n")
    if os.path.exists(NFT_FILE):
        os.remove(NFT_FILE)
    if run(["nft", "list", "table", "inet", NFT_TABLE])[0] == 0:
        must(["nft", "delete", "table", "inet", NFT_TABLE], "nft delete table")


# --- firewalld ---------------------------------------------------------------------------------------------------
# A policy from any zone to the host, evaluated before every zone (negative priority), holding rich rules: allows
# at priority -2, then one drop per port at -1. Its name is the tag. New policies exist only in the permanent
# configuration, so creating one needs a reload; later changes go to runtime and permanent without one.

FW_POLICY = "orthanc-harden"
FW_SETTINGS = {"priority": "-100", "target": "CONTINUE", "ingress-zones": "ANY", "egress-zones": "HOST"}


def fw_rich_rules(ports, v4, v6):
    rules = []
    for family, cidrs in (("ipv4", v4), ("ipv6", v6)):
        for cidr in cidrs:
            for port in ports:
                rules.append('rule priority="-2" family="%s" source address="%s" port port="%d" protocol="tcp" '
                             'accept' % (family, cidr, port))
    return rules + ['rule priority="-1" port port="%d" protocol="tcp" drop' % port for port in ports]


def _fw_policy(permanent):
    """{"settings": {...}, "rules": [...]} of our policy, or None where it does not exist."""
    flag = ["--permanent"] if permanent else []
    code, out, _ = run(["firewall-cmd"] + flag + ["--info-policy=" + FW_POLICY])
    if code != 0:
        return None
    settings, rules, in_rules = {}, [], False
    for line in out.splitlines()[1:]:
        if in_rules:
            if line.strip():
                rules.append(line.strip())
            continue
        key, _, value = line.strip().partition(":")
        if key == "rich rules":
            in_rules = True
        elif key in FW_SETTINGS:
            settings[key] = value.strip()
    return {"settings": settings, "rules": rules}


def _fw_needs_creation(permanent, runtime):
    return any(policy is None or policy["settings"] != FW_SETTINGS for policy in (permanent, runtime))


def fw_plan(ports, v4, v6):
    wanted = fw_rich_rules(ports, v4, v6)
    permanent, runtime = _fw_policy(True), _fw_policy(False)
    if _fw_needs_creation(permanent, runtime):
        fw_require_in_sync("creating the orthanc-harden policy")
        return {"changed": True, "problems": [], "rules": wanted, "current_rules": (permanent or {}).get("rules", []),
                "wanted_rules": wanted, "notes": ["policy %s created (priority %s, any zone to the host): one "
                                                  "firewalld reload" % (FW_POLICY, FW_SETTINGS["priority"])]}
    changed = any(sorted(policy["rules"]) != sorted(wanted) for policy in (permanent, runtime))
    return {"changed": changed, "problems": [], "rules": wanted, "current_rules": permanent["rules"],
            "wanted_rules": wanted}


def _fw_config_view(permanent):
    # Interfaces are bound at runtime by NetworkManager and the like; they never match the permanent view.
    flag = ["--permanent"] if permanent else []
    text = []
    for query in (["--list-all-zones"], ["--list-all-policies"], ["--direct", "--get-all-rules"]):
        out = must(["firewall-cmd"] + flag + query, "firewall-cmd " + " ".join(query))
        for line in out.splitlines():
            if line.strip().startswith("interfaces:"):
                continue
            text.append(line.replace(" (active)", "").replace(" (default)", "").rstrip())
    return text


def fw_require_in_sync(what):
    """A reload discards runtime-only changes silently: refuse, before any change, when there are some."""
    if _fw_config_view(True) != _fw_config_view(False):
        raise Unsupported("firewalld has runtime changes that are not in its permanent configuration, and %s "
                          "needs a reload, which would discard them: make them permanent (firewall-cmd "
                          "--runtime-to-permanent) or drop them (firewall-cmd --reload), then re-run" % what)


def _fw_sync_rules(flag, current, wanted):
    for rule in sorted(set(current) - set(wanted)):
        must(["firewall-cmd"] + flag + ["--policy=" + FW_POLICY, "--remove-rich-rule=" + rule], "firewalld remove")
    for rule in wanted:
        if rule not in current:
            must(["firewall-cmd"] + flag + ["--policy=" + FW_POLICY, "--add-rich-rule=" + rule], "firewalld add")


def fw_apply(ports, v4, v6):
    wanted = fw_rich_rules(ports, v4, v6)
    permanent, runtime = _fw_policy(True), _fw_policy(False)
    if _fw_needs_creation(permanent, runtime):
        fw_require_in_sync("creating the orthanc-harden policy")
        if permanent is not None:
            must(["firewall-cmd", "--permanent", "--delete-policy=" + FW_POLICY], "firewalld delete policy")
        must(["firewall-cmd", "--permanent", "--new-policy=" + FW_POLICY], "firewalld new policy")
        base = ["firewall-cmd", "--permanent", "--policy=" + FW_POLICY]
        try:
            for option in ("--set-priority=" + FW_SETTINGS["priority"], "--set-target=" + FW_SETTINGS["target"],
                           "--add-ingress-zone=ANY", "--add-egress-zone=HOST"):
                must(base + [option], "firewalld policy " + option)
            _fw_sync_rules(["--permanent"], [], wanted)
        except FirewallError:
            # Only the permanent configuration was touched: take the half-made policy away again.
            run(["firewall-cmd", "--permanent", "--delete-policy=" + FW_POLICY])
            raise
        must(["firewall-cmd", "--reload"], "firewall-cmd --reload")
        return ["firewalld reloaded once to activate the new policy %s" % FW_POLICY]
    _fw_sync_rules(["--permanent"], permanent["rules"], wanted)
    _fw_sync_rules([], runtime["rules"], wanted)
    return []


def fw_remove():
    """Permanent: the policy is deleted. Runtime: its rules are taken away, so no reload is needed."""
    runtime = _fw_policy(False)
    if runtime is not None:
        _fw_sync_rules([], runtime["rules"], [])
    if _fw_policy(True) is not None:
        must(["firewall-cmd", "--permanent", "--delete-policy=" + FW_POLICY], "firewalld delete policy")


def fw_running():
    return bool(shutil.which("firewall-cmd")) and run(["firewall-cmd", "--state"])[1].strip() == "running"


# --- iptables ----------------------------------------------------------------------------------------------------

def ipt_rules(ports, cidrs):
    portlist = ",".join(str(p) for p in ports)
    match = "-p tcp -m multiport --dports %s -m comment --comment %s" % (portlist, TAG)
    rules = ["-A %s -s %s %s -j RETURN" % (CHAIN, cidr, match) for cidr in cidrs]
    return rules + ["-A %s %s -j DROP" % (CHAIN, match)]


JUMP = "-A INPUT -m comment --comment %s -j %s" % (TAG, CHAIN)


def _ipt_current(save):
    out = run([save, "-t", "filter"])[1].splitlines()
    ours = [line for line in out if line.startswith("-A %s " % CHAIN)]
    inputs = [line for line in out if line.startswith("-A INPUT ")]
    return ours, bool(inputs) and inputs[0] == JUMP


def ipt_plan(ports, v4, v6):
    changed, current, wanted = False, [], []
    for save, cidrs in (("iptables-save", v4), ("ip6tables-save", v6)):
        if not shutil.which(save):
            continue
        ours, jump_first = _ipt_current(save)
        tool = save[:-len("-save")]
        current += ["%s %s" % (tool, rule) for rule in ours + ([JUMP] if jump_first else [])]
        wanted += ["%s %s" % (tool, rule) for rule in ipt_rules(ports, cidrs) + [JUMP]]
        if ours != ipt_rules(ports, cidrs) or not jump_first:
            changed = True
    return {"changed": changed, "problems": [], "rules": ipt_rules(ports, v4) + ipt_rules(ports, v6),
            "current_rules": current, "wanted_rules": wanted}


def ipt_apply(ports, v4, v6):
    for tool, cidrs in (("iptables", v4), ("ip6tables", v6)):
        if not shutil.which(tool):
            continue
        chain = "*filter\n:%s - [0:0]\n%s\nCOMMIT\n" % (CHAIN, "\n".join(ipt_rules(ports, cidrs)))
        must([tool + "-restore", "--noflush"], tool + "-restore", stdin=chain)  # declaring the chain flushes it
        _, jump_first = _ipt_current(tool + "-save")
        if not jump_first:
            while run([tool, "-D", "INPUT", "-m", "comment", "--comment", TAG, "-j", CHAIN])[0] == 0:
                pass
            must([tool, "-I", "INPUT", "1", "-m", "comment", "--comment", TAG, "-j", CHAIN], tool + " -I INPUT")
    return ipt_persist()


def ipt_persist():
    if shutil.which("netfilter-persistent"):
        must(["netfilter-persistent", "save"], "netfilter-persistent save")
        return []
    return ["iptables rules are not persistent: netfilter-persistent is not installed (apt install "
            "iptables-persistent), so a reboot drops them"]


def ipt_drop_chain(tool):
    """Take away the tool's INPUT jump(s) and its chain, for one of iptables/ip6tables."""
    for _ in range(100):
        if run([tool, "-D", "INPUT", "-m", "comment", "--comment", TAG, "-j", CHAIN])[0] != 0:
            break
    if run([tool, "-L", CHAIN, "-n"])[0] == 0:
        must([tool, "-F", CHAIN], tool + " -F")
        must([tool, "-X", CHAIN], tool + " -X")


def ipt_remove():
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool):
            ipt_drop_chain(tool)
    return ipt_persist()


# --- Docker: DOCKER-USER (see docker_user.py) -------------------------------------------------------------------

def docker_plan(v4, v6):
    """What the Docker part wants: our chain in DOCKER-USER for every Orthanc port published beyond loopback,
    nothing of ours when there is none. {"changed", "script" (None: nothing wanted), "bindings", "rules", "notes"}"""
    engine = docker_engine()
    if engine is None:
        return {"changed": False, "script": None, "bindings": [], "rules": [], "notes": []}
    bindings = published_orthanc_ports(engine)
    live = docker_user_live()
    host_ports = sorted({b["host_port"] for b in bindings})
    notes = []
    if bindings and not live:
        notes.append("Docker publishes Orthanc on %s but runs without iptables (--iptables=false: no DOCKER-USER "
                     "chain): nothing to hook; docker-proxy serves those ports through INPUT, so restrict them "
                     "there or publish them on one address" % ", ".join(str(p) for p in host_ports))
    if any(":" in b["host_ip"] for b in bindings) and "ip6tables" not in live and live:
        notes.append("IPv6 bindings of Orthanc are not filtered: Docker's ip6tables support is off, so "
                     "docker-proxy serves them through INPUT")
    cidrs = {"iptables": v4, "ip6tables": v6}
    wanted = {tool: docker_rules(host_ports, cidrs[tool]) for tool in live} if host_ports else {}
    script = docker_script(wanted) if wanted else None
    changed = False
    for tool, state in live.items():
        want = wanted.get(tool)
        if want is None:
            changed = changed or state["chain"] or state["jumps"] > 0
        else:
            changed = changed or state["rules"] != want or not state["jump_first"] or state["jumps"] != 1
    if _read(DOCKER_SCRIPT) != script:
        changed = True
    if _systemd():
        unit_wanted = DOCKER_UNIT_TEXT if script else None
        if _read(DOCKER_UNIT) != unit_wanted or os.path.islink(DOCKER_WANTS) != bool(script):
            changed = True
    elif script:
        notes.append("DOCKER-USER rules are not persistent: no systemd here to re-apply them after Docker starts")
    files = {}  # what a dry run shows as diffs
    for path, text in [(DOCKER_SCRIPT, script)] + ([(DOCKER_UNIT, DOCKER_UNIT_TEXT)] if script and _systemd() else []):
        if text and _read(path) != text:
            files[path] = [_read(path), text]
    return {"changed": changed, "script": script, "bindings": bindings,
            "rules": [rule for tool in sorted(wanted) for rule in [tool + ":"] + wanted[tool]], "notes": notes,
            "current_rules": ["%s %s" % (tool, rule) for tool in sorted(live) for rule in live[tool]["rules"]],
            "wanted_rules": ["%s %s" % (tool, rule) for tool in sorted(wanted) for rule in wanted[tool]],
            "files": files}


def docker_drop():
    """Take our chain and every jump to it away, for iptables and ip6tables."""
    for tool, _ in DOCKER_TOOLS:
        if not shutil.which(tool):
            continue
        for _ in range(100):
            if run([tool, "-D", "DOCKER-USER", "-m", "comment", "--comment", DOCKER_TAG, "-j", DOCKER_CHAIN])[0]:
                break
        if run([tool, "-n", "-L", DOCKER_CHAIN])[0] == 0:
            must([tool, "-F", DOCKER_CHAIN], tool + " -F " + DOCKER_CHAIN)
            must([tool, "-X", DOCKER_CHAIN], tool + " -X " + DOCKER_CHAIN)


def _docker_files(script):
    """Script, unit and its enablement as `script` wants them (None: all gone); True when the unit file changed."""
    if script is None:
        if os.path.islink(DOCKER_WANTS):
            must(["systemctl", "disable", DOCKER_UNIT_NAME], "systemctl disable " + DOCKER_UNIT_NAME)
        changed = os.path.exists(DOCKER_UNIT)
        for path in (DOCKER_SCRIPT, DOCKER_UNIT):
            if os.path.exists(path):
                os.remove(path)
        if changed and _systemd():
            run(["systemctl", "daemon-reload"])
        return
    if _read(DOCKER_SCRIPT) != script:
        _write(DOCKER_SCRIPT, script)
    if _systemd():
        if _read(DOCKER_UNIT) != DOCKER_UNIT_TEXT:
            _write(DOCKER_UNIT, DOCKER_UNIT_TEXT)
            must(["systemctl", "daemon-reload"], "systemctl daemon-reload")
        if not os.path.islink(DOCKER_WANTS):
            must(["systemctl", "enable", DOCKER_UNIT_NAME], "systemctl enable " + DOCKER_UNIT_NAME)


def docker_apply(step):
    """Bring DOCKER-USER, the script and the unit to `step` (docker_plan's answer); on any failure put the
    previous script and unit back and re-load the previous rules."""
    before = {DOCKER_SCRIPT: _read(DOCKER_SCRIPT)}
    try:
        _docker_files(step["script"])
        if step["script"] is None:
            docker_drop()
        elif _systemd():
            # The unit runs the script: the rules come from the same file a reboot or a Docker restart uses.
            must(["systemctl", "restart", DOCKER_UNIT_NAME], "systemctl restart " + DOCKER_UNIT_NAME)
        else:
            must(["sh", DOCKER_SCRIPT], "the DOCKER-USER script")
    except (FirewallError, OSError) as err:
        back = "DOCKER-USER was put back as it was"
        try:
            _docker_files(before[DOCKER_SCRIPT])
            docker_drop()
            if before[DOCKER_SCRIPT] is not None:
                must(["sh", DOCKER_SCRIPT], "the previous DOCKER-USER script")
        except (FirewallError, OSError) as failed:
            back = "putting DOCKER-USER back failed: %s" % failed
        raise FirewallError("Docker: %s; %s" % (err, back)) from None


def docker_ours():
    """Whether anything of the Docker part is on the host (removal)."""
    live = docker_user_live()
    return any(state["chain"] or state["jumps"] for state in live.values()) or any(
        os.path.exists(path) for path in (DOCKER_SCRIPT, DOCKER_UNIT))


# --- request -----------------------------------------------------------------------------------------------------

def validate(request):
    ports = request.get("ports") or []
    if (not ports and not request.get("docker")) or any(
            not isinstance(p, int) or isinstance(p, bool) or not 0 < p < 65536 for p in ports):
        raise FirewallError("ports must be TCP ports between 1 and 65535, not %r" % (ports,))
    try:
        v4, v6 = split_cidrs(request.get("cidrs") or [])
    except ValueError as err:
        raise FirewallError("invalid CIDR: %s" % err) from None
    ssh_port = request.get("ssh_port")
    if ssh_port in ports:
        raise FirewallError("port %d is SSH's: restricting it could lock everyone out" % ssh_port)
    if not v4 and not v6 and not request.get("allow_empty"):
        raise FirewallError("the allow list is empty: that cuts off every client (set allow_empty to mean it)")
    return sorted(set(ports)), v4, v6


def plan(request):
    ports, v4, v6 = validate(request)
    result = {"backend": "none", "active": False, "ports": ports, "changed": False, "input_changed": False,
              "problems": [], "enable": False, "notes": [], "rules": []}
    if ports:
        try:
            result.update(input_plan(request, ports, v4, v6))
        except Unsupported as err:
            if not request.get("docker"):
                raise
            result["blocked"] = str(err)  # the host stays not compliant; Docker's part does not depend on it
    if request.get("docker"):
        docker = docker_plan(v4, v6)
        result["docker"] = {k: docker[k] for k in ("changed", "bindings", "rules")}
        result["notes"] += docker["notes"]
        if docker["changed"]:  # what a dry run shows, after the INPUT part's
            extra = planned_changes("DOCKER-USER", docker, False, None)
            result["add"] = result.get("add", []) + extra["add"]
            result["remove"] = result.get("remove", []) + extra["remove"]
            result["diffs"] = dict(result.get("diffs", {}), **extra["diffs"])
    elif shutil.which("iptables-save") and ":DOCKER-USER" in run(["iptables-save", "-t", "filter"])[1]:
        result["notes"].append("Docker runs here: ports it publishes bypass the INPUT chain, so these rules do not "
                               "filter them; orthanc_harden_firewall_docker filters Orthanc's in DOCKER-USER")
    result["changed"] = result["input_changed"] or bool(result.get("docker", {}).get("changed"))
    return result


def input_plan(request, ports, v4, v6):
    """The host firewall's part: Orthanc's own ports in INPUT, with the backend the host uses."""
    backend, active = detect()
    wanted = request.get("backend") or "auto"
    if wanted != "auto" and wanted != backend:
        if wanted == "iptables" and shutil.which("iptables-save"):
            backend, active = "iptables", True
        elif wanted == "nftables" and shutil.which("nft") and os.path.exists(NFT_CONF):
            backend, active = "nftables", True
        else:
            raise Unsupported("firewall backend %s was asked for, but this host uses %s" % (wanted, backend))
    result = {"backend": backend, "active": active, "enable": False, "notes": []}
    if backend == "none":
        raise Unsupported("no host firewall found (firewalld, ufw, nftables, iptables): nothing changed; "
                            "bind Orthanc to a private address or install one")
    if not active:
        if backend == "firewalld":
            raise Unsupported("firewalld is installed but not running: not starting it (start it with its "
                              "permanent configuration, or use another backend), nothing changed")
        if not request.get("enable"):
            raise Unsupported("%s is installed but inactive: not enabling it (set orthanc_harden_firewall_enable"
                              " to enable it, allowing every port sshd listens on first)" % backend)
        result["enable"] = True
    step = {"ufw": ufw_plan, "nftables": nft_plan, "iptables": ipt_plan, "firewalld": fw_plan}[backend](
        ports, v4, v6)
    if step["problems"]:  # a foreign rule in the way: INPUT cannot be made compliant, like an unusable firewall
        raise Unsupported(step["problems"][0])
    result.update(input_changed=step["changed"] or result["enable"], problems=step["problems"], rules=step["rules"])
    result["notes"] += step.get("notes", [])
    if result["input_changed"]:
        result.update(planned_changes(backend, step, result["enable"], request.get("ssh_port")))
    return result


def planned_changes(backend, step, enable, ssh_port):
    """What a change would add and remove, as the commands or rule lines a sysadmin reads (dry runs)."""
    current, wanted = step.get("current_rules", []), step.get("wanted_rules", [])
    add = [rule for rule in wanted if rule not in current]
    remove = [rule for rule in current if rule not in wanted]
    if backend == "ufw" and enable:
        add += ["ufw allow proto tcp to any port %d comment %s" % (port, SSH_TAG) for port in ssh_ports(ssh_port)]
        add.append("ufw --force enable")
    if not add and not remove:
        add = ["(the same rules, moved to lead the %s list)" % backend]
    diffs = {path: text_diff(path, old, new) for path, (old, new) in sorted(step.get("files", {}).items())}
    return {"add": add, "remove": remove, "diffs": diffs}


def text_diff(path, old, new):
    return "".join(difflib.unified_diff((old or "").splitlines(True), new.splitlines(True),
                                        fromfile=path if old is not None else "/dev/null",
                                        tofile="%s (planned)" % path))


def _change(backend, result, ports, v4, v6, keep_open):
    if backend == "ufw":
        ufw_apply(ports, v4, v6)
        if result["enable"]:
            ufw_enable(keep_open)  # last: ufw comes up with SSH and Orthanc's rules all in place at once
    elif backend == "nftables":
        nft_apply(ports, v4, v6)
    elif backend == "firewalld":
        result["notes"] += fw_apply(ports, v4, v6)
    else:
        result["notes"] += ipt_apply(ports, v4, v6)


def apply(request):
    """Change the firewall under a snapshot: any failure puts it back at once. With a `token` a revert is armed
    first and stays armed until the control node, having opened a fresh SSH connection, confirms. The Docker part
    follows the INPUT part; it filters forwarded traffic only, so it cannot cut this session off."""
    result = plan(request)
    if result["problems"]:
        raise FirewallError(result["problems"][0])
    if result["input_changed"]:
        _apply_input(request, result)
    if result.get("docker", {}).get("changed"):
        v4, v6 = validate(request)[1:]
        docker_apply(docker_plan(v4, v6))
        if docker_plan(v4, v6)["changed"]:
            raise FirewallError("Docker: the DOCKER-USER rules did not come out as planned")
    return result


def _apply_input(request, result):
    ports, v4, v6 = validate(request)
    backend = result["backend"]
    keep_open = ssh_ports(request.get("ssh_port"))
    clash = sorted(set(ports) & set(keep_open))
    if clash:
        raise FirewallError("port %d is SSH's (sshd listens on it, or this session came in on it): restricting "
                            "it could lock everyone out" % clash[0])
    result["ssh_ports"] = keep_open
    token = request.get("token")
    with _lock():
        snap = snapshot(backend)
        if token:
            result["armed"] = arm(snap, token, int(request.get("confirm_seconds") or 120))
        try:
            _change(backend, result, ports, v4, v6, keep_open)
            if plan(dict(request, enable=False, docker=False))["input_changed"]:
                raise FirewallError("%s: the rules did not come out as planned" % backend)
        except Exception as err:
            try:
                restore(snap)
                back = "the firewall was put back as it was"
            except FirewallError as failed:
                back = str(failed)
            finally:
                if token:
                    disarm()
            raise FirewallError("%s; %s" % (err, back)) from None


def remove(request, dry=False):
    """Take away every tagged rule, table, file and include line, whichever backend holds them. The SSH rule
    added when enabling ufw stays (removing it could lock everyone out), and so does ufw's enabled state."""
    found = []
    if shutil.which("ufw") and any(r["comment"] == TAG for f in ("/etc/ufw/user.rules", "/etc/ufw/user6.rules")
                                   for r in _ufw_tuples(f)):
        found.append("ufw")
    conf = _read(NFT_CONF) or ""
    if os.path.exists(NFT_FILE) or NFT_INCLUDE in conf.splitlines() or (
            shutil.which("nft") and run(["nft", "list", "table", "inet", NFT_TABLE])[0] == 0):
        found.append("nftables")
    if any(CHAIN in run([save, "-t", "filter"])[1] for save in ("iptables-save", "ip6tables-save")
           if shutil.which(save)):
        found.append("iptables")
    if fw_running() and (_fw_policy(True) is not None or (_fw_policy(False) or {}).get("rules")):
        found.append("firewalld")
    if docker_ours():
        found.append("docker-user")
    notes = []
    if not dry:
        if "ufw" in found:
            _ufw_delete_ours([TAG])
        if "nftables" in found:
            nft_remove()
        if "iptables" in found:
            notes = ipt_remove()
        if "firewalld" in found:
            fw_remove()
        if "docker-user" in found:
            docker_apply({"script": None})
    return {"changed": bool(found), "removed": found, "notes": notes}


def main():
    mode = sys.argv[1]
    if mode in ("revert-due", "revert-after"):  # the armed revert, from its timer or detached sleep: no stdin
        revert_due(int(sys.argv[2]) if mode == "revert-after" else 0)
        return
    result = answer(mode, json.loads(sys.stdin.read()))
    print(json.dumps(result, sort_keys=True))
    if mode in ("apply", "remove", "confirm", "revert") and "error" in result:
        sys.exit(1)


def answer(mode, request):
    """The program's JSON answer to `request` in `mode`; errors are reported as data ({"error": ...})."""
    try:
        if mode == "remove-check":
            result = remove(request, dry=True)
        elif mode in ("confirm", "revert"):
            result = settle(request["token"], keep=mode == "confirm")
        else:
            result = {"check": plan, "apply": apply, "remove": remove}[mode](request)
    except FirewallError as err:
        result = {"error": str(err), "unsupported": isinstance(err, Unsupported)}
    return result


if __name__ == "__main__":
    main()
