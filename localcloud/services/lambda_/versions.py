"""Lambda function versions in the local cloud, as AWS has them (moto 5.2.5 publishes them, but not quite).

What moto gets wrong, and this fixes:
- A CloudFormation `AWS::Lambda::Version`'s `Ref` resolved to its logical id; on AWS it is the version's
  qualified ARN (`...:function:NAME:7`), what a caller invokes to run exactly that version. `GetAtt
  Version` is the number. Deleting the resource deletes the version (unless the template retains it:
  `services.cloudformation.updates`).
- Version numbers were `len(versions) + 1`: after a version is deleted the next publish reused the number
  of the newest one, so two versions had one ARN. AWS never reuses a number: the next is one more than
  the highest ever published.
- ListVersionsByFunction answered a function named by its ARN with no versions at all.

A qualified invoke runs that version's own code and configuration: moto resolves the qualifier to the
version (a copy of the function made when it was published), which the runner executes
(`services.lambda_.runner`, its environments keyed by the version's code and configuration).

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudserviceslambda_versionspy
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Callable
from typing import Any

from moto.awslambda.models import LambdaStorage, LambdaVersion, lambda_backends

Undo = Callable[[], None]
# The highest version number a function ever had, kept beside moto's list of its versions.
HIGHEST = "localcloud_highest_version"


def publish_version(self: Any, name_or_arn: str, description: str = "") -> Any:
    """moto's LambdaStorage.publish_version, with AWS's numbering."""
    function = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
    name = function.function_name
    if name not in self._functions or not self._functions[name]["latest"]:
        return None
    entry = self._functions[name]
    versions = entry["versions"]
    if versions and not function.code_or_config_updated:
        return versions[-1]  # nothing changed since the last publish: Lambda returns that version
    function.code_or_config_updated = False
    number = max([entry.get(HIGHEST, 0), *(int(v.version) for v in versions)]) + 1
    entry[HIGHEST] = number
    published = copy.copy(entry["latest"])
    published.set_version(number)
    if description:
        published.description = description
    versions.append(published)
    self._arns[published.function_arn] = published
    return published


def list_versions_by_function(self: Any, name_or_arn: str) -> Any:
    """moto's, for a function named by its ARN too (moto answered an ARN with no versions at all; its
    response handler passes the path segment still percent-encoded)."""
    name_or_arn = urllib.parse.unquote(name_or_arn)
    name = self.split_function_arn(name_or_arn)[1] if name_or_arn.startswith("arn:") else name_or_arn
    return _original_list_versions(self, name)


_original_list_versions = LambdaStorage.list_versions_by_function


def _create_version(
    cls: type[LambdaVersion],
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **kwargs: Any,
) -> LambdaVersion:
    properties = cloudformation_json["Properties"]
    backend = lambda_backends[account_id][region_name]
    published: Any = backend.publish_version(properties["FunctionName"], properties.get("Description", ""))
    version: Any = cls({"Version": published.version})
    version.function_arn = published.function_arn
    return version


def _delete_version(
    cls: type[LambdaVersion], resource_name: str, cloudformation_json: Any, account_id: str, region_name: str
) -> None:
    # resource_name is the physical id: the qualified ARN.
    lambda_backends[account_id][region_name].delete_function(resource_name)


def _physical_resource_id(self: Any) -> str:
    return str(getattr(self, "function_arn", self.logical_resource_id))


def _get_cfn_attribute(self: Any, attribute_name: str) -> Any:
    from moto.cloudformation.exceptions import UnformattedGetAttTemplateException  # noqa: PLC0415

    if attribute_name == "Version":
        return str(self.version)
    raise UnformattedGetAttTemplateException()


def install() -> Undo:
    """Patch moto; returns the function that restores it."""
    patches: dict[tuple[type, str], Any] = {
        (LambdaStorage, "publish_version"): publish_version,
        (LambdaStorage, "list_versions_by_function"): list_versions_by_function,
        (LambdaVersion, "create_from_cloudformation_json"): classmethod(_create_version),
        (LambdaVersion, "delete_from_cloudformation_json"): classmethod(_delete_version),
        (LambdaVersion, "physical_resource_id"): property(_physical_resource_id),
        (LambdaVersion, "get_cfn_attribute"): _get_cfn_attribute,
        (LambdaVersion, "has_cfn_attr"): classmethod(lambda cls, attr: attr == "Version"),
    }
    # What each class itself held (None: it inherited the name), to put back.
    saved = {(owner, name): owner.__dict__.get(name) for owner, name in patches}
    for (owner, name), value in patches.items():
        setattr(owner, name, value)

    def undo() -> None:
        for (owner, name), original in saved.items():
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    return undo
