"""Issue #18.4: a value given where a secret reference belongs may be the secret itself: never repeat it."""

from __future__ import annotations

import pytest

from orthanc_harden.secrets import SecretError, resolve_users

CANARY = "S3cret-Canary-91c2"


@pytest.mark.parametrize("value", [
    f'{{"admin": "{CANARY}"}}',          # users pasted as JSON
    CANARY,                              # a bare password
    f"admin:{CANARY}",                   # user:password, which looks like scheme:path
    f"vault:#{CANARY}",                  # a known scheme without a path
])
def test_a_value_that_is_not_a_reference_is_never_echoed(value):
    with pytest.raises(SecretError) as err:
        resolve_users(value, environ={})
    message = str(err.value)
    assert CANARY not in message and "admin" not in message
    assert "orthanc_harden_users_ref" in message and "env, file, vault" in message
