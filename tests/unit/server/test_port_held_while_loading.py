"""A model server holds its HTTP port from before its models load: while a model loads (for
seconds, with a big framework), no other process picking a free port may be given that port,
and calls are refused rather than left waiting. (A replica started on a port another replica
was about to bind was probed as that replica, and routed to: a 404 from the wrong model.)"""

from __future__ import annotations

import errno
import socket

import pytest

from ksrv.errors import ServerNotReady
from ksrv.model.base import Model
from ksrv.server import app
from ksrv.server.settings import ServerSettings
from tests.conftest import free_port


class StopsAfterLooking(Model):
    """Looks at its server's port from inside load(), then fails the start."""

    def __init__(self, name: str, port: int) -> None:
        super().__init__(name)
        self.port = port
        self.bind_error: int | None = None
        self.connect_error: int | None = None

    def load(self) -> bool:
        with socket.socket() as other:  # a plain bind, as a free-port pick makes
            try:
                other.bind(("127.0.0.1", self.port))
            except OSError as exc:
                self.bind_error = exc.errno
        with socket.socket() as caller:
            self.connect_error = caller.connect_ex(("127.0.0.1", self.port))
        raise RuntimeError("stop here")


def test_the_port_is_bound_but_refuses_calls_while_the_model_loads():
    port = free_port()
    model = StopsAfterLooking("slow", port)
    settings = ServerSettings(http_port=port, grpc_port=0)
    with pytest.raises(RuntimeError, match="stop here"):
        app.serve(settings, [model])
    assert model.bind_error == errno.EADDRINUSE
    assert model.connect_error == errno.ECONNREFUSED
    with socket.socket() as after:  # a failed start gives the port back
        after.bind(("127.0.0.1", port))


def test_a_port_someone_listens_on_stops_the_server_before_the_models_load():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        model = StopsAfterLooking("never", port)
        with pytest.raises(ServerNotReady, match=f"port {port} \\(HTTP\\) is already in use"):
            app.serve(ServerSettings(http_port=port, grpc_port=0), [model])
    assert model.bind_error is None  # load() never ran
