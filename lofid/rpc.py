"""Old import path of the control socket's server: see lofid/control/."""

from lofid.control.protocol import (E_AUTH, E_FAILED, E_INVALID, E_NO_METHOD,  # noqa: F401
                                    MAX_MESSAGE, NOTIFY, REQUEST, RESPONSE, RpcError)
from lofid.control.server import (ACCEPT_RETRY, AUTH_TIMEOUT, MAX_CLIENTS,  # noqa: F401
                                  MAX_SEND_BUFFER, AlreadyRunning, Server, SocketError,
                                  default_socket_path, max_clients, prepare_socket_path)

NOTIFICATION = NOTIFY
