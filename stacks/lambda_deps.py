"""The functions' third-party packages, as Lambda will see them: what the runtime provides, what the
Powertools layer provides, and what the asset must carry, all from one hash-pinned lock.

`requirements-lambda.lock` pins the `lambda` extra for the deployed runtime (python3.14 on arm64, `make
lock`). Each pin is one of:

- **runtime**: Lambda's Python runtime ships boto3 and botocore with their dependencies; never bundled.
- **layer**: the Powertools layer (`aws-lambda-powertools` and what only it needs). On AWS the public layer
  provides it; the `local` environment deploys a stand-in layer built from these pins.
- **bundled**: everything else the functions import (a codec, a decompressor): copied into the asset.

`make install` downloads the wheels of the layer and bundled pins into the user's wheel cache
(`~/.cache/resilient-pipeline/lambda-wheels/<target>/`: one for every checkout, so that `pipeline diff`'s
synth of another revision, in a checkout of its own, finds them too; each wheel is checked against the
lock of the revision that uses it), once per target: `arm64-cp314` for AWS (manylinux aarch64, CPython 3.14: no Docker, nothing compiled
here) and this machine's platform for the local cloud. Synth reads only that cache, offline, checks each
wheel against the lock's hashes and its tags against the target, and unpacks it; a missing wheel fails the
synth with a message naming `make install`.

    python -m stacks.lambda_deps download        # what `make install` runs
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements-lambda.lock"
# Outside the checkout: every checkout of the project (worktrees, `pipeline diff`'s checkouts of other
# revisions) shares it. Wheels are named by release and checked against each lock's hashes, so sharing is safe.
CACHE = Path.home() / ".cache" / "resilient-pipeline" / "lambda-wheels"

RUNTIME = "runtime"
LAYER = "layer"
BUNDLED = "bundled"

# What Lambda's Python runtime provides (boto3, botocore and their dependencies): the local cloud gives
# its environments the host's pinned boto3 in their place.
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)
# The top of the Powertools layer; its dependencies that the runtime does not provide come with it.
POWERTOOLS = "aws-lambda-powertools"


class LambdaDependencyError(Exception):
    """A wheel the asset needs is missing or does not match the lock; the message says what to run."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    hashes: tuple[str, ...]
    via: tuple[str, ...]  # normalized names of what requires it; empty for a requirement of the extra

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version} " + " ".join(f"--hash=sha256:{h}" for h in self.hashes)


def parse_lock(path: Path = LOCK) -> list[Pin]:
    """The pins of a `uv pip compile --generate-hashes` output, with their `# via` parents."""
    pins: list[Pin] = []
    current: dict[str, list[str] | str] | None = None
    in_via = False

    def close() -> None:
        if current is not None:
            pins.append(
                Pin(
                    name=normalize(str(current["name"])),
                    version=str(current["version"]),
                    hashes=tuple(current["hashes"]),
                    via=tuple(current["via"]),
                )
            )

    for raw in path.read_text().splitlines():
        line = raw.strip()
        pinned = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", raw)
        if pinned:
            close()
            current = {"name": pinned.group(1), "version": pinned.group(2), "hashes": [], "via": []}
            in_via = False
            continue
        if current is None:
            continue
        if line.startswith("--hash=sha256:"):
            hashes = current["hashes"]
            assert isinstance(hashes, list)
            hashes.append(line.removeprefix("--hash=sha256:").rstrip(" \\"))
        elif line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            in_via = not rest
            if rest:
                _add_via(current, rest)
        elif in_via and line.startswith("#"):
            _add_via(current, line.lstrip("# ").strip())
    close()
    return pins


def _add_via(current: dict[str, list[str] | str], parent: str) -> None:
    via = current["via"]
    assert isinstance(via, list)
    # `-` (stdin) or the project itself: a requirement of the extra, not a dependency of another pin.
    if parent != "-" and "(" not in parent:
        via.append(normalize(parent))


def classify(pins: Sequence[Pin]) -> dict[str, str]:
    """Each pin's place: runtime, layer (Powertools and what only it needs) or bundled (the rest, and
    anything a bundled package needs, so that the asset works whatever the layer holds)."""
    places: dict[str, str] = {}
    for pin in pins:
        if pin.name in RUNTIME_PROVIDED:
            places[pin.name] = RUNTIME
        elif not pin.via:
            places[pin.name] = LAYER if pin.name == POWERTOOLS else BUNDLED
    changed = True
    while changed:
        changed = False
        for pin in pins:
            if pin.name in RUNTIME_PROVIDED:
                continue
            parents = [places.get(parent) for parent in pin.via]
            place = BUNDLED if BUNDLED in parents else LAYER if LAYER in parents else None
            if place is not None and places.get(pin.name) != place and places.get(pin.name) != BUNDLED:
                places[pin.name] = place
                changed = True
    for pin in pins:
        places.setdefault(pin.name, BUNDLED)
    return places


def pins_in(place: str, path: Path = LOCK) -> list[Pin]:
    pins = parse_lock(path)
    places = classify(pins)
    return [pin for pin in pins if places[pin.name] == place]


def bundled_digest(path: Path = LOCK) -> bytes:
    """What names the bundled packages on any machine: their pins and hashes (the code digest covers it)."""
    text = "\n".join(
        f"{pin.name}=={pin.version}:{','.join(sorted(pin.hashes))}" for pin in pins_in(BUNDLED, path)
    )
    return hashlib.sha256(text.encode()).digest()


# -- targets -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A runtime and architecture wheels are chosen for."""

    name: str
    python: str  # "3.14"
    machine: str  # "aarch64", "x86_64"
    platforms: tuple[str, ...]  # pip --platform values; empty: this machine's own

    @property
    def cpython_tag(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def wheel_dir(self) -> Path:
        return CACHE / self.name

    def accepts(self, wheel: str) -> bool:
        """Whether a wheel (by its file name's tags) runs on this target."""
        tags = wheel_tags(wheel)
        if tags is None:
            return False
        pythons, abis, platforms = tags
        minor = int(self.python.split(".")[1])
        python_ok = any(
            tag in ("py3", "py2.py3", self.cpython_tag)
            or (tag.startswith("cp3") and "abi3" in abis and int(tag[3:] or 0) <= minor)
            for tag in pythons
        )
        abi_ok = bool({"none", "abi3", self.cpython_tag} & set(abis))
        platform_ok = any(
            tag == "any" or (tag.endswith(self.machine) and "linux" in tag) for tag in platforms
        )
        return python_ok and abi_ok and platform_ok


# AWS: python3.14 on arm64 (Amazon Linux 2023, glibc 2.34: manylinux_2_28 and older wheels run there).
ARM64 = Target(
    name="arm64-cp314",
    python="3.14",
    machine="aarch64",
    platforms=("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64"),
)


def host_target() -> Target:
    """This machine, for the local cloud: its interpreter runs the functions' code."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    machine = platform.machine().lower()
    return Target(name=f"{machine}-cp{python.replace('.', '')}", python=python, machine=machine, platforms=())


def wheel_tags(wheel: str) -> tuple[list[str], list[str], list[str]] | None:
    """(python tags, abi tags, platform tags) of a wheel file name, or None if it is not one."""
    if not wheel.endswith(".whl"):
        return None
    parts = wheel[: -len(".whl")].split("-")
    if len(parts) < 5:
        return None
    python, abi, plat = parts[-3:]
    return python.split("."), abi.split("."), plat.split(".")


def _wheel_name_version(wheel: str) -> tuple[str, str]:
    parts = wheel[: -len(".whl")].split("-")
    return normalize(parts[0]), parts[1]


def wheel_for(pin: Pin, target: Target) -> Path:
    """The cached wheel of `pin` for `target`, checked against the lock's hashes."""
    candidates = []
    if target.wheel_dir.is_dir():
        for path in sorted(target.wheel_dir.glob("*.whl")):
            name, version = _wheel_name_version(path.name)
            if name == pin.name and version == pin.version and target.accepts(path.name):
                candidates.append(path)
    if not candidates:
        raise LambdaDependencyError(
            f"no wheel of {pin.name}=={pin.version} for {target.name} in {target.wheel_dir}: run `make install` "
            "(it downloads the Lambda functions' dependencies for every target; synth itself stays offline)"
        )
    path = candidates[0]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest not in pin.hashes:
        raise LambdaDependencyError(
            f"{path} does not match requirements-lambda.lock (sha256 {digest}): delete it and run `make install`"
        )
    return path


def unpack_wheel(wheel: Path, destination: Path) -> list[str]:
    """Install a wheel by unpacking it (what `pip install --target` leaves, without scripts or byte code):
    the package, its .dist-info (importlib.metadata reads versions from it), and `.data/purelib|platlib`
    at the top. Returns the names written, sorted."""
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            if member.endswith("/"):
                continue
            target = member
            data = re.match(r"^[^/]+\.data/(purelib|platlib)/(.+)$", member)
            if data:
                target = data.group(2)
            elif re.match(r"^[^/]+\.data/", member):
                continue  # scripts, headers, data: not importable, not on Lambda's path
            path = destination / target
            if ".." in Path(target).parts or Path(target).is_absolute():
                raise LambdaDependencyError(f"{wheel.name}: unsafe path {member!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(archive.read(member))
            written.append(target)
    return written


def install(place: str, target: Target, destination: Path, *, lock: Path = LOCK) -> list[Pin]:
    """Unpack the wheels of every pin in `place` (bundled or layer) for `target` into `destination`."""
    pins = pins_in(place, lock)
    for pin in pins:
        unpack_wheel(wheel_for(pin, target), destination)
    return pins


# -- download (make install) ---------------------------------------------------------------------------


def _download(pins: Iterable[Pin], target: Target) -> None:
    pins = list(pins)
    if not pins:
        return
    target.wheel_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as requirements:
        requirements.write("\n".join(pin.requirement for pin in pins) + "\n")
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--disable-pip-version-check",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(target.wheel_dir),
        "-r",
        requirements.name,
    ]
    if target.platforms:
        command += ["--python-version", target.python, "--implementation", "cp"]
        for plat in target.platforms:
            command += ["--platform", plat]
    try:
        subprocess.run(command, check=True)  # noqa: S603 - this interpreter's pip, arguments of our own
    finally:
        Path(requirements.name).unlink()


def download(targets: Sequence[Target]) -> None:
    """Fetch every wheel the assets and the layer stand-in need (network: `make install` only)."""
    needed = [pin for place in (LAYER, BUNDLED) for pin in pins_in(place)]
    for target in targets:
        missing = []
        for pin in needed:
            try:
                wheel_for(pin, target)
            except LambdaDependencyError:
                missing.append(pin)
        _download(missing, target)
        for pin in needed:
            wheel_for(pin, target)  # every one there now, and matching the lock


def describe() -> Iterator[str]:
    pins = parse_lock()
    places = classify(pins)
    for pin in pins:
        yield f"{places[pin.name]:8} {pin.name}=={pin.version}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacks.lambda_deps", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("download", "list"))
    args = parser.parse_args(argv)
    if args.command == "list":
        print("\n".join(describe()))
        return 0
    try:
        download([ARM64, host_target()])
    except (LambdaDependencyError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
