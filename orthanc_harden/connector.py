"""Old home of the ``@dockerengine`` connector: installs made before the move still name it in their entry points."""
from .docker.connector import DockerEngineConnector  # noqa: F401
