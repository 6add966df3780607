# Remote program body (see bundle() in __init__): the probe, then the authentication and firewall plans for what
# it found, in one run, so a remediation reads a host with one SSH command and one Python start instead of three.
# SOURCES (set ahead of this body) holds the library and each part's text; each part runs in a namespace of its
# own, as it does alone (their names overlap). The request comes on standard input, never on the command line:
# {"auth": {"users": {name: password}, "users_mode", "disable_remote_access", "keep_backups"} or null,
#  "firewall": {"cidrs", "backend", "enable", "allow_empty", "ssh_port", "docker"} or null}.
# It prints {"state": the probe's document, "auth": [{"request", "plan"}], "firewall": {"request", "plan"} or
# null}: each plan with the request it answers, users left out (the control node knows what it sent), so an
# operation uses a plan only for its very request. Never a password: plans hold names, files and flags.

import json
import sys

LIBRARY = compile(SOURCES["library"], "<orthanc-harden library>", "exec")


def part(name):
    namespace = {"__name__": "orthanc_harden_" + name}
    exec(LIBRARY, namespace)
    exec(compile(SOURCES[name], "<orthanc-harden %s>" % name, "exec"), namespace)
    return namespace


def auth_requests(state, template):
    """One request per unit, as the deploy makes them: the unit's configuration and service, the rest as sent."""
    return [dict(template, config_path=unit["config_path"], service=unit["unit"])
            for unit in sorted(state.get("units", []), key=lambda u: u["unit"])]


def firewall_request(state, template, served_ports):
    """The deploy's request: the ports the units serve; Docker's only where the probe found an engine."""
    docker = bool(template["docker"] and state.get("docker"))
    ports = served_ports(state)
    return dict(template, ports=ports, docker=docker) if ports or docker else None


def without_users(request):
    return {key: value for key, value in request.items() if key != "users"}


def main():
    wanted = json.loads(sys.stdin.read())
    probe = part("probe")
    cache = probe["ProbeCache"]()
    state = probe["collect"](cache)
    cache.save()
    answer = {"state": state, "auth": [], "firewall": None}
    if state.get("probe") != 1:
        print(json.dumps(answer, sort_keys=True))
        return
    if wanted.get("auth"):
        for request in auth_requests(state, wanted["auth"]):
            answer["auth"].append({"request": without_users(request), "plan": plan_of("auth", request)})
    if wanted.get("firewall"):
        request = firewall_request(state, wanted["firewall"], probe["served_ports"])
        if request is not None:
            answer["firewall"] = {"request": request, "plan": plan_of("firewall", request)}
    print(json.dumps(answer, sort_keys=True))


LOADED = {}


def plan_of(name, request):
    """The part's own "check" answer; None when it fails unexpectedly (the operation then asks on its own, and
    fails there as it would have)."""
    try:
        if name not in LOADED:
            LOADED[name] = part(name)
        return LOADED[name]["answer"]("check", request)
    except Exception:  # noqa: BLE001 - never the probe's state for one planner's failure
        return None


if __name__ == "__main__":
    main()
