"""``orthanc-harden`` as it checked a host before issue #24's last step, for the bench's before and after in one
run: the host's state read alone, then the authentication and the firewall plans each by a program of its own
(three SSH commands and three Python starts per compliant host). The bench's own: nothing reads ahead, which is
how the operations run in a user's deploy.

    python -m bench.three_programs remediate INVENTORY ...   # the arguments of orthanc-harden
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()  # before anything imports sockets, as the orthanc-harden command does

    from orthanc_harden import cli
    from orthanc_harden.runs import host_check

    host_check.wanted = lambda data: {"auth": None, "firewall": None}
    sys.exit(cli.main())
