"""``@dockerengine/NAME``: a pyinfra host that is a Docker engine reached only through its API.

A container host behind ``tcp://`` with TLS has no SSH for pyinfra to use, and pyinfra allows one ``@local``. With
this connector every engine is its own inventory host (its data carries ``orthanc_harden_docker_url``); connecting
pings the engine, so an unreachable engine fails that host alone, before any operation. There is no shell.

.. code:: python

    container_hosts = [("@dockerengine/pacs-07", {"orthanc_harden_docker_url": "tcp://pacs-07:2376",
                                                  "orthanc_harden_docker_tls": {...}})]
"""

from __future__ import annotations

from typing import Any, TypedDict

from pyinfra.api.exceptions import ConnectError, InventoryError
from pyinfra.connectors.base import BaseConnector, DataMeta
from pyinfra.connectors.util import CommandOutput, OutputLine

from .. import settings
from . import engine

# Every host data key the connector reads, with its description and default, as pyinfra's own connectors declare
# theirs (``pyinfra.connectors.ssh.connector_data_meta``).
connector_data_meta: dict[str, DataMeta] = {
    **{key: DataMeta(settings.SETTINGS[key].description, settings.SETTINGS[key].default)
       for key in engine.ENGINE_SETTINGS},
    **{key: DataMeta(description, default) for key, (description, default) in engine.SSH_DATA.items()},
}
# Any: pyinfra checks these types for every host when the inventory loads, and one wrong value would stop the whole
# run; settings.validate refuses it on that host alone, in one line.
ConnectorData = TypedDict("ConnectorData", {key: Any for key in connector_data_meta}, total=False)


class DockerEngineConnector(BaseConnector):
    handles_execution = True
    data_cls = ConnectorData
    data_meta = connector_data_meta
    data: ConnectorData

    @staticmethod
    def make_names_data(name=None):
        if not name:
            raise InventoryError("@dockerengine needs a name: @dockerengine/pacs-07")
        yield f"@dockerengine/{name}", {}, ["@dockerengine"]

    def connect(self) -> None:
        if not self.data["orthanc_harden_docker_url"]:
            raise ConnectError("orthanc_harden_docker_url is not set for this engine")
        try:
            self.client = engine.open_for(self.data)
        except engine.EngineError as err:
            raise ConnectError(str(err)) from None

    def disconnect(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.close()

    def _refuse(self, what: str):
        return CommandOutput([OutputLine("stderr", f"{self.host.name} is a Docker engine without a shell: "
                                                   f"{what} is not possible here")])

    def run_shell_command(self, command, print_output=False, print_input=False, **arguments):
        return False, self._refuse("a shell command")

    def put_file(self, filename_or_io, remote_filename, remote_temp_filename=None, print_output=False,
                 print_input=False, **arguments):
        return False

    def get_file(self, remote_filename, filename_or_io, remote_temp_filename=None, print_output=False,
                 print_input=False, **arguments):
        return False
