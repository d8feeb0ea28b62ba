"""`AWS::KMS::Key` as the strict compliance profile deploys it, for moto's CloudFormation and for the local
cloud's saved state (moto 5.2.5).

- moto's model hands the template's `Tags` (`[{"Key": ..., "Value": ...}]`, CloudFormation's shape) to its
  tagging service, which expects the API's `TagKey`/`TagValue`: every tagged key failed with KeyError, and
  the stack with "Fn::GetAtt references undefined resource" (the app tags every resource). The model here
  takes CloudFormation's shape, and `PendingWindowInDays`.
- moto gives every key an RSA private key (for asymmetric Sign/Verify), a `cryptography` object pickle
  refuses, so no state holding a key could be saved (`pipeline local down` lost everything). It is saved as
  PEM and loaded back.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceskmskeyspy
"""

from __future__ import annotations

import copyreg
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from moto.kms.models import Key

Undo = Callable[[], None]


def _cloudformation_tags(properties: dict[str, Any]) -> list[dict[str, str]]:
    return [
        {
            "TagKey": str(tag.get("Key", tag.get("TagKey"))),
            "TagValue": str(tag.get("Value", tag.get("TagValue", ""))),
        }
        for tag in properties.get("Tags") or []
    ]


def _create(
    cls: Any,
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> Any:
    properties = dict(cloudformation_json.get("Properties") or {})
    tags = _cloudformation_tags(properties)
    properties["Tags"] = tags
    key = _ORIGINAL_CREATE.__func__(
        cls,
        resource_name,
        {**cloudformation_json, "Properties": properties},
        account_id,
        region_name,
        **kwargs,
    )
    # As KMS keeps them: a key deleted by its stack waits this many days (ScheduleKeyDeletion's default 30).
    key.pending_window_in_days = int(properties.get("PendingWindowInDays", 30))
    return key


_ORIGINAL_CREATE: Any = Key.__dict__["create_from_cloudformation_json"]


def _load_private_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


def _reduce_private_key(key: Any) -> tuple[Callable[[bytes], Any], tuple[bytes]]:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return _load_private_key, (pem,)


def _private_key_types() -> tuple[type, ...]:
    """The concrete classes of `cryptography`'s private keys (its Rust bindings', not public names), as
    moto's keys hold them: copyreg needs the exact class."""
    return (
        type(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        type(ec.generate_private_key(ec.SECP256R1())),
    )


def install() -> Undo:
    """Give moto's Key the CloudFormation tags it expects and make key material picklable; returns a
    function that removes both."""
    Key.create_from_cloudformation_json = classmethod(_create)  # type: ignore[assignment,method-assign]
    kinds = _private_key_types()
    previous = {kind: copyreg.dispatch_table.get(kind) for kind in kinds}
    for kind in kinds:
        copyreg.pickle(kind, _reduce_private_key)

    def undo() -> None:
        Key.create_from_cloudformation_json = _ORIGINAL_CREATE  # type: ignore[method-assign]
        for kind, reducer in previous.items():
            if reducer is None:
                copyreg.dispatch_table.pop(kind, None)
            else:
                copyreg.dispatch_table[kind] = reducer

    return undo
