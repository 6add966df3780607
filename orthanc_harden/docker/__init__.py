"""Orthanc in containers, through the Docker Engine API: the engine client, the ``@dockerengine`` connector, read-only
inspection, the assessment of what a container needs, its spec, the dry-run plan and the replacement itself."""
