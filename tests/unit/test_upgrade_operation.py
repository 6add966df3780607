"""operations.upgrade.package in pyinfra's spec style: OrthancPackages facts in, exact commands out.

apt runs for real in tests/integration/test_upgrade.py; no dnf, yum or zypper host runs here, so these specs are
their proof of the commands (the fact's parsing of those tools' output is not exercised against real tools).
"""

from __future__ import annotations

import pytest
from pyinfra.api import FunctionCommand
from pyinfra.context import ctx_host

from orthanc_harden import outcomes
from orthanc_harden.facts.packages import OrthancPackages, parse
from orthanc_harden.checks import verify
from orthanc_harden.operations import verdict, upgrade

APT_FLAGS = ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --only-upgrade --no-install-recommends "
             "-o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold")


class FakeHost:
    def __init__(self, *facts: dict, name: str = "pacs-01"):
        self.name, self.facts, self.noops, self.reads, self.logged = name, list(facts), [], 0, []

    def get_fact(self, cls, **kwargs):
        assert cls is OrthancPackages
        self.reads += 1
        return self.facts[min(self.reads, len(self.facts)) - 1]

    def noop(self, message):
        self.noops.append(message)

    def log_styled(self, message, **kwargs):
        self.logged.append(message)


def packages(manager="apt", installed=None, candidates=None, available=None, held=(), index_age=60):
    return {"manager": manager, "installed": installed or {"orthanc": "1.5.6-1"}, "candidates": candidates or {},
            "available": available or {}, "held": list(held), "index_age": index_age}


def _run(*facts, **kwargs):
    fake = FakeHost(*facts)
    outcomes.clear()
    with ctx_host.use(fake):
        commands = list(upgrade.package._inner(**kwargs))
    return fake, commands


def _steps(commands):
    """(what, command) of each package-manager step; the last command verifies the result."""
    assert all(isinstance(c, FunctionCommand) for c in commands)
    return [(c.args[1], c.args[0]) for c in commands if c.function is verify.run]


def _install_line(script: str) -> str:
    return next(line for line in script.splitlines() if " || exit $?" in line).replace(" || exit $?", "")


def test_at_or_above_the_floor_is_a_no_op_without_refreshing_the_index():
    fake, commands = _run(packages(installed={"orthanc": "1.10.1+dfsg-2+deb12u1"}, index_age=None))
    assert commands == [] and fake.reads == 1
    assert fake.noops == ["orthanc 1.10.1+dfsg-2+deb12u1 is already at or above 1.5.8"]
    assert outcomes.for_host("pacs-01")["upgrade"]["status"] == "ok"


@pytest.mark.parametrize("installed, pin, noop", [
    ("1.10.1+dfsg-2+deb12u1", None, "orthanc 1.10.1+dfsg-2+deb12u1 is already at or above 1.5.8"),
    ("", None, "no orthanc package installed"),
    ("1.10.1+dfsg-2+deb12u1", "1.10.1", "orthanc 1.10.1+dfsg-2+deb12u1 is already at 1.10.1"),
])
def test_a_known_installed_version_with_nothing_to_do_reads_no_fact(installed, pin, noop):
    fake, commands = _run(installed=installed, version=pin)
    assert commands == [] and fake.reads == 0 and fake.noops == [noop]


def test_a_known_installed_version_below_the_floor_reads_the_packages():
    fact = packages(installed={"orthanc": "1.5.6-1"}, candidates={"orthanc": "1.10.1+dfsg-2+deb12u1"})
    fake, commands = _run(fact, installed="1.5.6-1")
    assert fake.reads == 1 and _steps(commands)[0][0] == "installing orthanc 1.10.1+dfsg-2+deb12u1"


def test_no_package_is_a_no_op():
    fake, commands = _run(packages(installed={"orthanc-dicomweb": "1.0-1"}))
    assert commands == [] and fake.noops == ["no orthanc package installed"]


def test_apt_upgrade_with_plugins_in_one_transaction_restarting_once():
    fact = packages(installed={"orthanc": "1.5.6+dfsg-1", "orthanc-dicomweb": "0.6+dfsg-1",
                               "orthanc-webviewer": "2.5-1"},
                    candidates={"orthanc": "1.10.1+dfsg-2+deb12u1", "orthanc-dicomweb": "1.13+dfsg-1",
                                "orthanc-webviewer": "2.5-1"})
    fake, commands = _run(fact)
    (what, script), = _steps(commands)
    assert what == "installing orthanc 1.10.1+dfsg-2+deb12u1"
    assert _install_line(script) == (f"{APT_FLAGS} orthanc=1.10.1+dfsg-2+deb12u1 orthanc-dicomweb=1.13+dfsg-1")
    lines = script.splitlines()
    assert lines[0] == "before_0=$(systemctl show -p MainPID --value orthanc.service 2>/dev/null)"
    assert lines[-1] == ('[ "$(systemctl show -p MainPID --value orthanc.service)" = "$before_0" ] '
                         "&& systemctl try-restart orthanc.service; true")
    assert "exit 101" in script and "rm -f /usr/sbin/policy-rc.d" in script
    assert commands[-1].function is verify.upgraded
    assert commands[-1].args[2:4] == ("1.10.1+dfsg-2+deb12u1", "1.5.8")


def test_stale_index_is_refreshed_first_and_the_refreshed_index_decides():
    stale = packages(candidates={"orthanc": "1.5.6-1"}, index_age=7200)
    fresh = packages(candidates={"orthanc": "1.10.1+dfsg-2+deb12u1"}, index_age=0)
    fake, commands = _run(stale, fresh, cache_time=3600)
    (refresh_what, refresh), (install_what, install) = _steps(commands)
    assert refresh == ("apt-get update -q -o DPkg::Lock::Timeout=120 -o APT::Update::Error-Mode=any "
                       "&& touch /var/lib/apt/periodic/update-success-stamp")
    assert install_what == "installing orthanc 1.10.1+dfsg-2+deb12u1" and fake.reads == 2


@pytest.mark.parametrize("age, refreshed", [(None, True), (3600, True), (3599, False)])
def test_cache_time_boundary(age, refreshed):
    fact = packages(candidates={"orthanc": "1.10.1+dfsg-2+deb12u1"}, index_age=age)
    _, commands = _run(fact, cache_time=3600)
    assert [what for what, _ in _steps(commands)][0].startswith("refreshing") is refreshed


@pytest.mark.parametrize("manager, expected", [
    ("dnf", "dnf -y -q upgrade orthanc-1.12.1-1.fc40 orthanc-dicomweb-1.16-1.fc40"),
    ("yum", "yum -y -q upgrade orthanc-1.12.1-1.fc40 orthanc-dicomweb-1.16-1.fc40"),
    ("zypper", "zypper -n install --no-recommends orthanc=1.12.1-1.fc40 orthanc-dicomweb=1.16-1.fc40"),
])
def test_rpm_managers_upgrade_in_lockstep(manager, expected):
    fact = packages(manager, installed={"orthanc": "1.5.6-1.fc40", "orthanc-dicomweb": "1.0-1.fc40"},
                    candidates={"orthanc": "1.12.1-1.fc40", "orthanc-dicomweb": "1.16-1.fc40"})
    _, commands = _run(fact)
    (_, script), = _steps(commands)
    assert _install_line(script) == expected
    assert "policy-rc.d" not in script  # rpm scriptlets: the PID comparison alone avoids a second restart
    assert commands[-1].args[6] == manager  # .rpmnew is looked for after rpm upgrades


@pytest.mark.parametrize("manager, refresh", [
    ("dnf", "dnf -q makecache && mkdir -p /var/lib/orthanc-harden && "
            "touch /var/lib/orthanc-harden/package-index-stamp"),
    ("zypper", "zypper -n -q refresh && mkdir -p /var/lib/orthanc-harden && "
               "touch /var/lib/orthanc-harden/package-index-stamp"),
])
def test_rpm_refresh(manager, refresh):
    assert upgrade.refresh_command(manager, 120) == refresh


@pytest.mark.parametrize("pin, expected", [("1.10.1", "1.10.1+dfsg-2+deb12u1"), ("1.9.7+dfsg-5", "1.9.7+dfsg-5")])
def test_pinned_version_installs_exactly_that_version(pin, expected):
    fact = packages(candidates={"orthanc": "1.12.0+dfsg-1"},
                    available={"orthanc": ["1.9.7+dfsg-5", "1.10.1+dfsg-2+deb12u1", "1.12.0+dfsg-1"]})
    _, commands = _run(fact, version=pin)
    (_, script), = _steps(commands)
    assert _install_line(script) == f"{APT_FLAGS} orthanc={expected}"


def test_pin_not_offered_reports_and_changes_nothing():
    fact = packages(candidates={"orthanc": "1.10.1+dfsg-2+deb12u1"}, available={"orthanc": ["1.10.1+dfsg-2+deb12u1"]})
    fake, commands = _run(fact, version="1.12.0", fail_if_unreachable=False)
    assert commands == []
    assert fake.noops == ["cannot upgrade: orthanc 1.12.0 is not offered by the configured repositories"]
    assert outcomes.for_host("pacs-01")["upgrade"]["status"] == "not-compliant"


def test_pin_older_than_installed_never_downgrades():
    fact = packages(installed={"orthanc": "1.10.1+dfsg-2+deb12u1"}, available={"orthanc": ["1.9.7+dfsg-5"]})
    fake, commands = _run(fact, version="1.9.7")
    assert commands == []
    assert fake.noops == ["orthanc 1.10.1+dfsg-2+deb12u1 is newer than the pinned 1.9.7: never downgrades"]


def test_no_candidate_reaching_the_floor_fails_the_host_when_used_alone():
    """Imported into an operator's deploy, an unreachable floor never ends as "No changes" (#17)."""
    fact = packages(installed={"orthanc": "1.5.1-1"}, candidates={"orthanc": "1.5.6-1"})
    _, (fail,) = _run(fact)
    assert fail.execute(None, FakeHost(), {}) is False
    assert outcomes.for_host("pacs-01")["upgrade"] == {
        "status": "not-compliant", "message": "cannot upgrade: newest available orthanc is 1.5.6-1, below 1.5.8"}


def test_no_candidate_reaching_the_floor_is_reported_not_compliant_for_harden():
    fact = packages(installed={"orthanc": "1.5.1-1"}, candidates={"orthanc": "1.5.6-1"})
    fake, commands = _run(fact, fail_if_unreachable=False)
    assert commands == []
    assert fake.noops == ["cannot upgrade: newest available orthanc is 1.5.6-1, below 1.5.8"]
    assert outcomes.for_host("pacs-01")["upgrade"] == {
        "status": "not-compliant", "message": "cannot upgrade: newest available orthanc is 1.5.6-1, below 1.5.8"}


def test_a_raised_floor_applies_to_fixed_hosts_too():
    fact = packages(installed={"orthanc": "1.10.1+dfsg-2+deb12u1"}, candidates={"orthanc": "1.12.4+dfsg-1"})
    _, commands = _run(fact, floor="1.12.0")
    (_, script), = _steps(commands)
    assert _install_line(script) == f"{APT_FLAGS} orthanc=1.12.4+dfsg-1"


@pytest.mark.parametrize("manager, message", [
    ("apt", "cannot upgrade: orthanc held by apt-mark hold; set orthanc_harden_upgrade_allow_held: true for this "
            "host to upgrade it anyway"),
    ("dnf", "cannot upgrade: orthanc held by dnf versionlock; remove the lock to upgrade it"),
])
def test_held_package_stops_the_host_before_any_change(manager, message):
    fact = packages(manager, candidates={"orthanc": "1.12.1-1"}, held=["orthanc"], index_age=None)
    fake, commands = _run(fact)
    (stop,) = commands
    assert stop.function is not verify.run and fake.reads == 1  # not even an index refresh
    assert stop.execute(None, fake, {}) is False and fake.logged == [message]
    assert outcomes.for_host("pacs-01")["upgrade"] == {"status": "failed", "message": message}


def test_allow_held_upgrades_through_the_hold_and_puts_it_back():
    fact = packages(candidates={"orthanc": "1.10.1+dfsg-2+deb12u1"}, held=["orthanc"])
    _, commands = _run(fact, allow_held=True)
    (_, script), = _steps(commands)
    flags = APT_FLAGS.replace("--no-install-recommends", "--no-install-recommends --allow-change-held-packages")
    assert _install_line(script) == f"{flags} orthanc=1.10.1+dfsg-2+deb12u1 && apt-mark hold orthanc >/dev/null"


def test_bad_arguments_are_refused_before_any_fact():
    for kwargs in ({"floor": "latest"}, {"version": "newest"}, {"cache_time": -1}):
        fake, (command,) = _run(packages(), **kwargs)
        assert command.function is verdict._fail and command.args[1].startswith("upgrade: ")
        assert fake.reads == 0


def test_fact_parsing():
    facts = parse([
        "manager apt", "installed orthanc 1.5.7+lab-1", "installed orthanc-dicomweb 1.13+dfsg-1", "held orthanc",
        "candidate orthanc 1.10.1+dfsg-2+deb12u1", "candidate orthanc-dicomweb (none)",
        "available orthanc 1.10.1+dfsg-2+deb12u1", "available orthanc 1.5.7+lab-1",
        "index_mtime 1000", "now 4600",
    ])
    assert facts == {"manager": "apt", "installed": {"orthanc": "1.5.7+lab-1", "orthanc-dicomweb": "1.13+dfsg-1"},
                     "held": ["orthanc"], "candidates": {"orthanc": "1.10.1+dfsg-2+deb12u1"},
                     "available": {"orthanc": ["1.5.7+lab-1", "1.10.1+dfsg-2+deb12u1"]}, "index_age": 3600}
    rpm = parse(["manager dnf", "installed orthanc 1.9.7-1.fc38", "available orthanc 1.12.1-1.fc40",
                 "available orthanc 1.9.7-1.fc38", "now 5"])
    assert rpm["candidates"] == {"orthanc": "1.12.1-1.fc40"} and rpm["index_age"] is None
    assert parse(["manager none", "now 5"])["manager"] is None


def test_authentication_following_takes_the_restart():
    fact = packages(installed={"orthanc": "1.5.6-1"}, candidates={"orthanc": "1.10.1+dfsg-2+deb12u1"})
    _, commands = _run(fact, restart=False)
    (_, script), = _steps(commands)
    assert "try-restart" not in script and "exit 101" in script  # the package's own restarts stay refused too
    assert commands[-1].function is verify.upgraded and commands[-1].args[-1] is False


@pytest.mark.parametrize("restart", [True, False])
def test_a_unit_running_a_replaced_binary_is_restarted_at_the_floor(restart):
    fake, commands = _run(installed="1.10.1+dfsg-2+deb12u1", replaced=["orthanc.service"], restart=restart)
    (command,) = commands
    assert command.function is verify.restart_replaced and command.args[:2] == (["orthanc.service"], restart)
    assert fake.reads == 0
