"""`--shard I/N`: split an inventory's hosts between N runners by a hash of each host's name.

A host's shard depends on its own key alone (SHA-256, not Python's per-process salted `hash()`), so N runners
that load the same inventory, in whatever order it lists its hosts and on whatever machine, each take one part and
together take every host exactly once. The key is the host's name, except where hosts must be audited in one run:
a Docker engine reached over the network goes with the machine it runs on (the SSH host of that name, whose
DOCKER-USER chain filters the engine's published ports), and `orthanc_harden_shard_key` puts hosts together by
hand. Shards are numbered 1 to N. Sizes are even on average only: a small fleet can leave a shard empty, which is
a run of no host (exit 0), not an error.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_SHARDS = 1000  # far beyond any fleet's runner count; a typo such as 1/30000 is refused instead
_FORM = re.compile(r"(\d+)/(\d+)")


class ShardError(ValueError):
    """A --shard value that cannot be used: one line saying why."""


@dataclass(frozen=True)
class Shard:
    index: int  # 1..count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index

    def select(self, names_or_hosts: list) -> list:
        """The members of this shard, in the order given (pyinfra hosts, or host names)."""
        return [h for h in names_or_hosts if self.holds(key_of(h))]

    def as_dict(self) -> dict:
        return {"index": self.index, "count": self.count}


def shard_of(key: str, count: int) -> int:
    """The shard (1..count) that holds the hosts of this key (a host's name, by default)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def key_of(host) -> str:
    """What a host (a pyinfra host, or a bare name) is sharded by: `orthanc_harden_shard_key`; for a Docker engine
    at `ssh://` or `tcp://`, the name of the machine it runs on; otherwise the host's name."""
    if isinstance(host, str):
        return host
    from .. import settings

    # A value of the wrong type is left to settings.validate, which fails that host with the cause.
    key = settings.get(host.data, "orthanc_harden_shard_key")
    if isinstance(key, str) and key:
        return key
    url = settings.get(host.data, "orthanc_harden_docker_url")
    if isinstance(url, str) and url.startswith(("ssh://", "tcp://")):
        machine = urlsplit(url).hostname
        if machine:
            return machine
    return host.name


def parse(text: str) -> Shard:
    """`I/N` with 1 <= I <= N <= MAX_SHARDS, or ShardError."""
    found = _FORM.fullmatch(text.strip())
    if not found:
        raise ShardError(f"--shard {text!r}: expected I/N, such as 1/3 (shard I of N, numbered from 1)")
    index, count = int(found[1]), int(found[2])
    if not 1 <= count <= MAX_SHARDS:
        raise ShardError(f"--shard {text}: N must be between 1 and {MAX_SHARDS}")
    if not 1 <= index <= count:
        raise ShardError(f"--shard {text}: I must be between 1 and {count} (shards are numbered from 1)")
    return Shard(index, count)


def selection_digest(host_names: list[str]) -> str:
    """Which hosts a run chose from (after --limit, before sharding), order-independent: runs of the same
    selection carry the same digest, so that a merge can tell shards of one fleet from reports of another."""
    return hashlib.sha256("\n".join(sorted(host_names)).encode("utf-8")).hexdigest()
