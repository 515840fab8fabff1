"""One exception root for everything edgebench raises at a user.

Every message names what was wrong and what to do about it, on one line. The CLI prints it as
`edgebench: error: <message>` and exits with `exit_code`: 2 for bad input (the user can fix the call or the
setup), 1 for a failure while doing the work.
"""

from __future__ import annotations


class EdgebenchError(Exception):
    """Root of edgebench's errors: a failure while doing the work (exit code 1)."""

    exit_code = 1


class BadInput(EdgebenchError):
    """The user's input or setup is wrong and the message says how to fix it (exit code 2)."""

    exit_code = 2


class MissingDependency(BadInput):
    """An optional package or tool (TensorRT, pycuda, nvidia-ml-py, tegrastats...) is not installed here."""


class DeviceError(EdgebenchError):
    """Hardware misbehaved: a port vanished, a sensor stopped answering, a meter went silent."""


class PermissionDenied(BadInput):
    """The OS refused access to a device file; the message names the group or rule that grants it."""


class ProtocolError(EdgebenchError):
    """Bytes from a peer (a meter, an agent) did not follow the protocol."""
