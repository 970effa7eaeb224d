"""Save (GET /images/{name}/get, /images/get) and load (POST /images/load)."""

from __future__ import annotations

from dockerremote.api.app import Router


def register(router: Router) -> None:
    pass
