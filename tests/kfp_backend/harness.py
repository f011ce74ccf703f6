"""Build the backend conformance harness (the Go module beside this file) once per KFP version.

Each version's pins are ``pins/<version>.mod``: ``github.com/kubeflow/pipelines`` and its
``api`` and ``kubernetes_platform`` modules at the pseudo-version of the release tag's commit.
The set-up first asks the Go module proxy for those three modules. Where it refuses one, the
same commit is taken from a local git clone of kubeflow/pipelines (``KFP_PIPELINES_GIT``, or
a snapshot fetched beside the checkout: ``.mirror/kubeflow+pipelines/repo`` in a folder above
it), checked against the pinned commit, and the three
modules are replaced by that tree, exactly as upstream's own ``go.mod`` replaces ``api`` and
``kubernetes_platform`` with ``./api`` and ``./kubernetes_platform``. Every other module comes
from the proxy at the versions upstream's ``go.mod`` requires. Downloads go to the default
``GOMODCACHE`` and builds to ``GOCACHE``, so only a machine's first run pays for them.

``python -m tests.kfp_backend.harness run`` builds every version, runs
``tests/test_kfp_backend.py`` against them and prints one verdict line per version; it fails
when a version did not run. With ``KFP_BACKEND_OPTIONAL=1`` (``make test``), a machine that can
get kubeflow/pipelines neither from the proxy nor from a clone prints why the tier did not run
and passes (``setup`` and ``verdict`` are its two halves).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Build artifacts (kept between runs, gitignored): per version its go.mod, go.sum, the tag's
#: tree when the proxy refused it, the binary, the compiled workflows and the replayed states.
BUILD = Path(os.environ.get("KFP_BACKEND_BUILD", HERE.parent.parent / "build" / "kfp_backend"))
PINS = HERE / "pins"
#: Where the search tool's ``fetch`` leaves a snapshot, relative to a folder above the checkout.
SNAPSHOT = Path(".mirror") / "kubeflow+pipelines" / "repo"
#: Go build tags per version: the entry points whose signatures changed (shim*.go).
TAGS = {"2.14.0": "kfp_pre215"}
MODULES = ("github.com/kubeflow/pipelines", "api", "kubernetes_platform")
#: The parts of the tag's tree that the three modules are made of.
TREE = ("go.mod", "go.sum", "api", "kubernetes_platform", "backend")


class SetupError(Exception):
    """The harness of a version cannot be built: one line for the user."""


class SourceUnavailable(SetupError):
    """Neither the module proxy nor a local clone has the version's kubeflow/pipelines."""


def local_clone() -> Path | None:
    """``KFP_PIPELINES_GIT``, else a fetched snapshot in a folder above the checkout."""
    if os.environ.get("KFP_PIPELINES_GIT"):
        return Path(os.environ["KFP_PIPELINES_GIT"])
    for folder in HERE.parents:
        if (folder / SNAPSHOT).exists():
            return folder / SNAPSHOT
    return None


@dataclass(frozen=True)
class Pin:
    version: str
    commit: str
    pseudo: str

    @property
    def modules(self) -> list[str]:
        base = MODULES[0]
        return [base] + [f"{base}/{name}" for name in MODULES[1:]]


def versions() -> list[str]:
    """The supported versions, oldest first: one per ``pins/<version>.mod``."""
    found = [p.name.removesuffix(".mod") for p in PINS.glob("*.mod")]
    return sorted(found, key=lambda v: tuple(int(x) for x in v.split(".")))


def pin(version: str) -> Pin:
    """The commit and pseudo-version that ``pins/<version>.mod`` names."""
    text = (PINS / f"{version}.mod").read_text()
    commit = re.search(r"= commit ([0-9a-f]{40})", text)
    pseudo = re.search(r"github\.com/kubeflow/pipelines (v0\.0\.0-\d{14}-[0-9a-f]{12})", text)
    if not commit or not pseudo:
        raise SetupError(f"pins/{version}.mod: expected '= commit <sha>' and a pseudo-version")
    if not commit[1].startswith(pseudo[1][-12:]):
        raise SetupError(
            f"pins/{version}.mod: pseudo-version {pseudo[1]} is not commit {commit[1]}"
        )
    return Pin(version, commit[1], pseudo[1])


def go_env() -> dict[str, str]:
    """The environment for ``go``: the machine's proxy and caches, no toolchain download."""
    if shutil.which("go") is None:
        raise SetupError("go: not found on PATH (the backend tier needs Go >= 1.24)")
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod -buildvcs=false"}


def _go(args: list[str], modfile: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """``go <command> -modfile=<modfile> <args>``: ``args`` starts with the (sub)command."""
    words = 2 if args[0] == "mod" else 1
    return subprocess.run(
        ["go", *args[:words], f"-modfile={modfile}", *args[words:]],
        cwd=HERE,
        env=go_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _first_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return next((line for line in lines if "error" in line.lower() or ":" in line), "")[:400]


def _proxy_refusals(p: Pin, modfile: Path) -> list[str]:
    """``module@version: error`` for each pinned module the module proxy does not serve."""
    refused = []
    for module in p.modules:
        done = _go(["mod", "download", "-json", f"{module}@{p.pseudo}"], modfile, timeout=300)
        if done.returncode != 0:
            try:
                error = json.loads(done.stdout).get("Error", "")
            except ValueError:
                error = _first_error(done.stderr)
            error = (error or _first_error(done.stderr)).splitlines()[0]
            error = error.split(": ", 1)[-1] if error.startswith(f"{module}@") else error
            refused.append(f"{module}@{p.pseudo}: {error}")
    return refused


def _extract(p: Pin, dest: Path) -> Path:
    """The tag's tree at the pinned commit, from a local kubeflow/pipelines clone."""
    git = local_clone()
    tree = dest / "src"
    if (tree / ".commit").is_file() and (tree / ".commit").read_text() == p.commit:
        return tree
    if git is None or not git.exists():
        raise SourceUnavailable(
            f"no local kubeflow/pipelines clone (set KFP_PIPELINES_GIT to a clone that has tag "
            f"{p.version})"
        )
    tagged = subprocess.run(
        ["git", "-C", str(git), "rev-parse", f"{p.version}^{{commit}}"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if tagged != p.commit:
        raise SetupError(
            f"{git}: tag {p.version} is {tagged or 'missing'}, pins/{p.version}.mod says {p.commit}"
        )
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = dest / "src.tar"
    with archive.open("wb") as out:
        subprocess.run(
            ["git", "-C", str(git), "archive", "--format=tar", p.commit, "--", *TREE],
            stdout=out,
            check=True,
        )
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    archive.unlink()
    (tree / ".commit").write_text(p.commit)
    return tree


def prepare(version: str) -> Path:
    """Download what ``version`` needs and build its harness binary; return the binary."""
    p = pin(version)
    dest = BUILD / version
    dest.mkdir(parents=True, exist_ok=True)
    modfile = dest / "go.mod"
    source_file = dest / "source.json"
    source = json.loads(source_file.read_text()) if source_file.is_file() else None
    if source is None or source.get("commit") != p.commit:
        modfile.write_text((PINS / f"{version}.mod").read_text())
        refused = _proxy_refusals(p, modfile)
        source = {"commit": p.commit, "pseudo": p.pseudo, "refused": refused}
        source["from"] = "local git clone" if refused else "module proxy"
        source_file.write_text(json.dumps(source, indent=1))
    text = (PINS / f"{version}.mod").read_text()
    if source["refused"]:
        tree = _extract(p, dest)
        text = re.sub(r"(?s)\nreplace \(.*?\)\n", "\n", text)
        text += "\nreplace (\n" + "".join(
            f"\t{module} => {tree / sub}\n"
            for module, sub in zip(p.modules, ("", "api", "kubernetes_platform"), strict=True)
        )
        text += ")\n"
    if not modfile.is_file() or modfile.read_text() != text:
        modfile.write_text(text)
        (dest / "go.sum").unlink(missing_ok=True)
    if not (dest / "go.sum").is_file():
        tidy = _go(["mod", "tidy"], modfile)
        if tidy.returncode != 0:
            raise SetupError(f"KFP {version}: go mod tidy failed: {_first_error(tidy.stderr)}")
    binary = dest / "kfpbackend"
    tags = [f"-tags={TAGS[version]}"] if version in TAGS else []
    built = _go(["build", *tags, "-o", str(binary), "."], modfile)
    if built.returncode != 0:
        raise SetupError(f"KFP {version}: go build failed: {_first_error(built.stderr)}")
    return binary


def source_of(version: str) -> dict:
    """Where ``version``'s kubeflow/pipelines modules came from, and what the proxy refused."""
    return json.loads((BUILD / version / "source.json").read_text())


VERDICTS = BUILD / "verdicts"


def write_verdict(version: str, line: str, ok: bool) -> None:
    """Record one version's result for :func:`verdict` (the tests call this)."""
    VERDICTS.mkdir(parents=True, exist_ok=True)
    (VERDICTS / f"{version}.json").write_text(json.dumps({"line": line, "ok": ok}))


def verdict() -> int:
    """Print one line per version; 1 when a version failed or did not run."""
    status = 0
    for version in versions():
        path = VERDICTS / f"{version}.json"
        if not path.is_file():
            print(f"KFP {version}: DID NOT RUN")
            status = 1
            continue
        result = json.loads(path.read_text())
        print(f"KFP {version}: {result['line']}")
        status |= 0 if result["ok"] else 1
    return status


def setup(unavailable: list[str] | None = None) -> int:
    """Build every version's harness, timing each; versions without a source go to
    ``unavailable``."""
    status = 0
    for version in versions():
        start = time.monotonic()
        try:
            prepare(version)
        except (SetupError, subprocess.TimeoutExpired) as error:
            if isinstance(error, SourceUnavailable) and unavailable is not None:
                unavailable.append(version)
            print(f"KFP {version}: set-up failed: {error}", file=sys.stderr)
            if (BUILD / version / "source.json").is_file():
                for refusal in source_of(version)["refused"]:
                    print(f"  module proxy refused {refusal}", file=sys.stderr)
            status = 1
            continue
        source = source_of(version)
        took = time.monotonic() - start
        origin = source["from"]
        print(f"KFP {version}: harness built in {took:.0f}s (kubeflow/pipelines from {origin})")
        for refusal in source["refused"]:
            print(f"  module proxy refused {refusal}")
    return status


def run() -> int:
    """Set up, run the tier's tests, print the verdicts (see the module's docstring)."""
    shutil.rmtree(VERDICTS, ignore_errors=True)
    VERDICTS.mkdir(parents=True, exist_ok=True)
    unavailable: list[str] = []
    if setup(unavailable) != 0:
        if os.environ.get("KFP_BACKEND_OPTIONAL") == "1" and unavailable == versions():
            print(
                "KFP backend tier NOT RUN on this machine: the module proxy refused the pinned "
                "kubeflow/pipelines modules (listed above) and no local clone was found "
                "(KFP_PIPELINES_GIT)"
            )
            return 0
        return 1
    tests = HERE.parent / "test_kfp_backend.py"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests), "-q", "-p", "no:cacheprovider"],
        env={**os.environ, "KFP_BACKEND_TIER": "1"},
    )
    return verdict() or done.returncode


if __name__ == "__main__":
    commands = {"setup": setup, "verdict": verdict, "run": run}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        print("usage: python -m tests.kfp_backend.harness setup|verdict|run", file=sys.stderr)
        raise SystemExit(2)
    VERDICTS.mkdir(parents=True, exist_ok=True)
    raise SystemExit(commands[sys.argv[1]]())
