"""pyinfra facts: what a host runs (Orthanc binaries, units, configuration, firewall) and its packages."""
