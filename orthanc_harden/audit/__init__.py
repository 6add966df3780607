"""Read-only evaluation: Orthanc instances as the probe and the engine describe them, their effective settings,
and findings in words and tables (the fleet run itself is in runs/)."""
