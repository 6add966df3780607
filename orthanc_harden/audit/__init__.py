"""Read-only discovery and audit of Orthanc across an inventory."""
