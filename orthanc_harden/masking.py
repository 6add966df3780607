"""Carry secrets through pyinfra without printing them."""

from __future__ import annotations

import io

MASK = "*MASKED*"


class SecretStdin(io.StringIO):
    """Standard input for a remote command or fact that prints as ``*MASKED*``.

    pyinfra logs a fact's arguments, ``_stdin`` included, with ``str()``; it writes stdin from ``readlines()`` of
    a file-like object. Each use consumes the buffer, so make a new one per command or fact call.
    """

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return MASK
