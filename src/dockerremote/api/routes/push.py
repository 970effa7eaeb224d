"""POST /images/{name}/push (being built: issue 4)."""

from __future__ import annotations

from dockerremote.api.app import Router


def register(router: Router) -> None:
    pass
