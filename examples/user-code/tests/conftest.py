"""Load this directory's transforms the way the deployed functions do (jobcore.plugins), once."""

from __future__ import annotations

from pathlib import Path

from jobcore.plugins import load_user_code

USER_CODE = Path(__file__).resolve().parents[1]
load_user_code(USER_CODE)
