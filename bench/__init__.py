"""Fleet-scale benchmarks: orthanc-harden against an equivalent Ansible playbook on N lab hosts.

Run it with ``.venv/bin/python -m bench.run --sizes 10,25,50``; see bench/README.md.
"""

# Everything the harness creates on the Docker engine carries this label (and a name starting with "bench-"),
# so teardown removes exactly what a bench run made and never anything of the lab, the tests or Molecule.
LABEL = "orthanc-harden.bench"
RUN_LABEL = "orthanc-harden.bench-run"
