"""Whole runs over an inventory: connect the fleet, audit or remediate it, one row and exit code per host, reports
(merged across shards), and the scheduled run that keeps them."""
