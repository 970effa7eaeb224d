"""The one exception tree of dockerremote.

    DockerRemoteError            status 500, message shown to the client as is
    ├── InvalidArgument          400  a client's mistake (bad reference, filter, parameter)
    │   └── InvalidReference     400  a reference that does not parse
    ├── Unauthorized             401
    ├── Forbidden                403
    ├── NotFound                 404
    │   └── ImageNotFound        404  "No such image: ..."
    ├── Conflict                 409
    ├── DigestMismatch           400  bytes that do not hash to what was promised
    ├── Unavailable              503
    └── SystemError              500  our side failed

Each class knows its HTTP status; the api layer maps any of them to
`{"message": ...}` in one place. Foreign exceptions are translated at each boundary.
"""

from __future__ import annotations


class DockerRemoteError(Exception):
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DockerRemoteError):
    status = 400


class InvalidReference(InvalidArgument):
    pass


class Unauthorized(DockerRemoteError):
    status = 401


class Forbidden(DockerRemoteError):
    status = 403


class NotFound(DockerRemoteError):
    status = 404


class ImageNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No such image: {name}")
        self.name = name


class Conflict(DockerRemoteError):
    status = 409


class DigestMismatch(DockerRemoteError):
    status = 400


class Unavailable(DockerRemoteError):
    status = 503


class SystemError(DockerRemoteError):  # noqa: A001 - shadowing is deliberate inside this tree
    status = 500
