"""Role sessions for the local cloud's own callers: the credentials a Lambda environment, a state machine's
service integrations or an event source mapping's reads run with, and who a request's access key belongs to.

Sessions are moto's STS AssumeRole sessions (keys `ASIA...`, a session token), so that GetCallerIdentity
answers `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` as on AWS; only those issued here are enforced.

How it models AWS, and where it differs: docs/local-cloud-internals.md#localcloudservicesiamsessionspy
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from moto.sts.models import sts_backends

from localcloud.core.state import REGION

# AWS's longest role session; expiry is not enforced locally (a warm environment may outlive any duration).
SESSION_SECONDS = 43_200
# Temporary (STS) access key ids start with this; a long-term key (`testing`, an IAM user's AKIA...) never.
TEMPORARY_KEY_PREFIX = "ASIA"


@dataclass(frozen=True)
class RoleSession:
    access_key_id: str
    secret_access_key: str
    session_token: str
    role_arn: str
    session_name: str
    account: str
    # The inline session policy AssumeRole was given (None: the role's permissions, unnarrowed).
    session_policy: str | None = None

    @property
    def arn(self) -> str:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.account}:assumed-role/{role_name}/{self.session_name}"

    def environment(self) -> dict[str, str]:
        """The variables boto3 reads its credentials from, as Lambda sets them in an environment."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }


class Sessions:
    """Issues one session per (role, session name) and finds the session behind an access key.
    Thread-safe: request threads look keys up while the runner and the interpreter issue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._issued: dict[tuple[str, str], RoleSession] = {}
        self._by_key: dict[str, RoleSession] = {}

    def issue(self, role_arn: str, session_name: str) -> RoleSession:
        """A session of `role_arn` named `session_name` (Lambda names it after the function), made once and
        reused: moto keeps every session it issues, and looks keys up by walking them."""
        key = (role_arn, session_name)
        with self._lock:
            found = self._issued.get(key)
            if found is not None:
                return found
        account = _account_of(role_arn)
        assumed = sts_backends[account]["aws"].assume_role(
            region_name=REGION,
            role_session_name=session_name,
            role_arn=role_arn,
            policy="",
            duration=SESSION_SECONDS,
            external_id="",
        )
        session = _from_moto(assumed)
        with self._lock:
            session = self._issued.setdefault(key, session)
            self._by_key[session.access_key_id] = session
        return session

    def lookup(self, access_key_id: str) -> RoleSession | None:
        """The role session `access_key_id` belongs to if the local cloud issued it, else None.

        Only the local cloud's own sessions (what AWS runs as a role: a function, a state machine's
        integrations, an event source mapping, a delivery) are enforced. A session someone assumed through
        the STS API (the CDK CLI assumes its bootstrap roles for every deploy) calls as the administrator,
        as the dummy credentials do: deploys and the CLI keep every right."""
        if not access_key_id.startswith(TEMPORARY_KEY_PREFIX):
            return None
        with self._lock:
            return self._by_key.get(access_key_id)


def _account_of(role_arn: str) -> str:
    parts = role_arn.split(":")
    if len(parts) < 6 or not parts[4]:
        raise ValueError(f"not a role ARN: {role_arn!r}")
    return parts[4]


def _from_moto(assumed: object) -> RoleSession:
    return RoleSession(
        access_key_id=str(assumed.access_key_id),  # type: ignore[attr-defined]
        secret_access_key=str(assumed.secret_access_key),  # type: ignore[attr-defined]
        session_token=str(assumed.session_token),  # type: ignore[attr-defined]
        role_arn=str(assumed.role_arn),  # type: ignore[attr-defined]
        session_name=str(assumed.session_name),  # type: ignore[attr-defined]
        account=str(assumed.account_id),  # type: ignore[attr-defined]
        session_policy=getattr(assumed, "policy", None) or None,
    )
