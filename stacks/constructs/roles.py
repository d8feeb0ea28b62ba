"""How the pipeline's IAM roles are made, per compliance profile: the one place that decides where a role's
statements live (an inline default policy, or one customer-managed policy) and which path it has."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam
from constructs import Construct, IConstruct


class ManagedPolicyRole(iam.Role):
    """A role whose every statement, its own and every grant made to it by CDK (event sources, queues, log
    groups, the key), lands in one customer-managed policy attached to it, never in an inline one (the
    NIST 800-53, HIPAA and PCI DSS packs' IAMNoInlinePolicy). CDK grants call `add_to_principal_policy`;
    overriding it here routes them all, and what depends on the policy (a function created after its
    permissions) depends on the managed policy instead."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        assumed_by: iam.IPrincipal,
        description: str,
        path: str | None,
    ) -> None:
        super().__init__(scope, construct_id, assumed_by=assumed_by, description=description, path=path)
        self._policy = iam.ManagedPolicy(
            self, "Policy", description=f"{description}: permissions", roles=[self]
        )

    def add_to_principal_policy(self, statement: iam.PolicyStatement) -> iam.AddToPrincipalPolicyResult:
        self._policy.add_statements(statement)
        return iam.AddToPrincipalPolicyResult(statement_added=True, policy_dependable=self._policy)

    @property
    def policy(self) -> iam.ManagedPolicy:
        return self._policy


@dataclass(frozen=True, kw_only=True)
class RoleStyle:
    """`managed_policies`: statements in one customer-managed policy per role (strict) rather than CDK's
    inline default policy. `path`: the roles' IAM path, which the key policy names (strict), or None."""

    managed_policies: bool = False
    path: str | None = None

    @property
    def is_default(self) -> bool:
        """Roles as CDK makes them: where CDK creates a role itself (a state machine's), let it."""
        return not self.managed_policies and self.path is None

    def role(
        self, scope: Construct, construct_id: str, *, assumed_by: iam.IPrincipal, description: str
    ) -> iam.Role:
        if self.managed_policies:
            return ManagedPolicyRole(
                scope, construct_id, assumed_by=assumed_by, description=description, path=self.path
            )
        return iam.Role(scope, construct_id, assumed_by=assumed_by, description=description, path=self.path)


DEFAULT_ROLES = RoleStyle()


def policy_of(role: iam.IRole) -> IConstruct:
    """The construct that holds the role's statements: what a cdk-nag acknowledgment of them is put on."""
    if isinstance(role, ManagedPolicyRole):
        return role.policy
    return role.node.find_child("DefaultPolicy")
