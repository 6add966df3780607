"""pyinfra operations, one per state they ensure: authentication, upgrade, firewall, container, schedule."""
