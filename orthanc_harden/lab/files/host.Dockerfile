# orthanc-harden lab host: Debian bookworm, systemd as PID 1, sshd, Debian's real Orthanc, firewalls.
FROM {rootfs}
ENV DEBIAN_FRONTEND=noninteractive
COPY configure-host.sh /tmp/configure-host.sh
# policy-rc.d keeps maintainer scripts from starting daemons inside the build.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends {packages} \
 && sh /tmp/configure-host.sh \
 && rm -f /usr/sbin/policy-rc.d /tmp/configure-host.sh \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV container=docker
STOPSIGNAL SIGRTMIN+3
CMD ["/sbin/init"]
