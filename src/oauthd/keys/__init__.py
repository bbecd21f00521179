"""The only importer of joserfc: key generation, sealing, signing, verification, JWKS, rotation.

`Keyring` is an immutable snapshot of the signing and verifying keys and the JWKS bytes, made
once per key change by the KeyManager actor and read by everyone else without a message.
"""

from oauthd.keys.client_assertion import (
    ASSERTION_ALGORITHMS,
    ClientKeys,
    KeySetInvalid,
    UnknownKey,
    parse_client_jwks,
    parse_provider_jwks,
    verify_client_assertion,
    verify_signed,
)
from oauthd.keys.jwk import (
    ALGORITHMS,
    GeneratedKey,
    Keyring,
    KeyringHolder,
    TokenInvalid,
    build_keyring,
    generate_key,
    parse_kek,
)
from oauthd.keys.rotation import (
    KeyState,
    KeyTimes,
    NewKey,
    Plan,
    Signers,
    next_event_at,
    plan_rotation,
    plan_schedule,
    signer_at,
    signers_at,
    state_at,
)

__all__ = [
    "ALGORITHMS",
    "ASSERTION_ALGORITHMS",
    "ClientKeys",
    "GeneratedKey",
    "KeySetInvalid",
    "KeyState",
    "KeyTimes",
    "Keyring",
    "KeyringHolder",
    "NewKey",
    "Plan",
    "Signers",
    "TokenInvalid",
    "UnknownKey",
    "build_keyring",
    "generate_key",
    "next_event_at",
    "parse_client_jwks",
    "parse_kek",
    "parse_provider_jwks",
    "plan_rotation",
    "plan_schedule",
    "signer_at",
    "signers_at",
    "state_at",
    "verify_client_assertion",
    "verify_signed",
]
