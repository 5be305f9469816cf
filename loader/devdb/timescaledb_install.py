"""Find PostgreSQL's binaries and make sure the TimescaleDB extension is installed for them.

When the extension is missing on Debian, build it from Debian's own source package (the
Apache-2 edition that Debian distributes), with build dependencies from Debian, printing every
step. The build tree is cached, so a second run only re-installs it. Nothing here downloads
from anywhere but the machine's configured Debian mirror.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

SOURCE_PACKAGE = "timescaledb"
# Debian carries timescaledb in releases newer than bookworm; its source builds for PG 14-17.
DEFAULT_SOURCE_SUITE = os.environ.get("TSFLEET_TIMESCALEDB_SUITE", "trixie")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class TimescaleDBMissing(RuntimeError):
    """TimescaleDB is not installed and could not be installed automatically."""


def find_pg_bindir() -> Path:
    """The PostgreSQL bindir: $PG_BINDIR, else the newest Debian one, else pg_config's."""
    explicit = os.environ.get("PG_BINDIR")
    if explicit:
        return Path(explicit)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())
    raise TimescaleDBMissing(
        "no PostgreSQL server binaries found: install PostgreSQL (Debian: apt-get install "
        "postgresql) or set TEST_DATABASE_URL to a server with TimescaleDB"
    )


def pg_config_value(bindir: Path, flag: str) -> str:
    pg_config = bindir / "pg_config"
    if not pg_config.exists():
        raise TimescaleDBMissing(
            f"{pg_config} is missing (Debian: install postgresql-server-dev-*)"
        )
    return subprocess.run(
        [str(pg_config), flag], capture_output=True, text=True, check=True
    ).stdout.strip()


def pg_major(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if not match:
        raise TimescaleDBMissing(f"cannot tell the PostgreSQL version from {out.stdout!r}")
    return match.group(1)


def timescaledb_installed(bindir: Path) -> bool:
    """True when the extension's control file and loader library are both present."""
    major = pg_major(bindir)
    share = Path(f"/usr/share/postgresql/{major}")
    lib = Path(f"/usr/lib/postgresql/{major}/lib")
    if (bindir / "pg_config").exists():
        share = Path(pg_config_value(bindir, "--sharedir"))
        lib = Path(pg_config_value(bindir, "--pkglibdir"))
    return (share / "extension" / "timescaledb.control").exists() and (
        lib / "timescaledb.so"
    ).exists()


def _is_debian() -> bool:
    return Path("/etc/debian_version").exists() and shutil.which("apt-get") is not None


def _debian_mirror() -> str:
    """The URI of the machine's configured Debian archive (never a hard-coded host)."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.is_file() and path.suffix in ("", ".list", ".sources"):
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(r"^Types:.*\bdeb\b", stanza, re.M) and "security" not in stanza:
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if uris and "debian" in uris.group(1):
                    return uris.group(1)
        for line in text.splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in line:
                uri = next(p for p in parts[1:] if not p.startswith("["))
                if "debian" in uri:
                    return uri
    raise TimescaleDBMissing("no Debian archive is configured in /etc/apt; cannot fetch sources")


def _run(step: str, cmd: list[str], log: Callable[[str], None], cwd: Path | None = None,
         logfile: Path | None = None) -> None:
    log(f"[tsfleet-harness] {step}: {' '.join(cmd)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if logfile:
        with open(logfile, "w", encoding="utf-8") as handle:
            result = subprocess.run(cmd, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT)
    else:
        result = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        detail = logfile.read_text(errors="replace")[-3000:] if logfile else result.stderr[-3000:]
        raise TimescaleDBMissing(f"step '{step}' failed (exit {result.returncode}):\n{detail}")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tsfleet" / "timescaledb"


def install_from_debian_source(bindir: Path, log: Callable[[str], None] = print) -> None:
    """Build and install the Apache edition of TimescaleDB from Debian's source package."""
    major = pg_major(bindir)
    cache = cache_dir() / f"pg{major}"
    build = cache / "build"
    if (build / "Makefile").exists():
        log(f"[tsfleet-harness] reusing cached TimescaleDB build in {build}")
        _run("install cached build", ["make", "install"], log, cwd=build,
             logfile=cache / "install.log")
        return
    if os.geteuid() != 0:
        raise TimescaleDBMissing(
            "TimescaleDB is not installed and installing it needs root: run `make test` as root "
            f"once, or install TimescaleDB for PostgreSQL {major} yourself"
        )
    cache.mkdir(parents=True, exist_ok=True)
    apt_dir = cache / "apt"
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt_dir / "sources.d").mkdir(parents=True, exist_ok=True)
    signed = f"Signed-By: {KEYRING}\n" if Path(KEYRING).exists() else ""
    (apt_dir / "sources.d" / "tsfleet-src.sources").write_text(
        f"Types: deb-src\nURIs: {_debian_mirror()}\nSuites: {DEFAULT_SOURCE_SUITE}\n"
        f"Components: main\n{signed}"
    )
    private_apt = [
        "-o", f"Dir::Etc::SourceParts={apt_dir / 'sources.d'}",
        "-o", "Dir::Etc::SourceList=/dev/null",
        "-o", f"Dir::State::Lists={apt_dir / 'lists'}",
    ]
    log(f"[tsfleet-harness] TimescaleDB is not installed for PostgreSQL {major}; building the "
        f"Apache edition from Debian's source package ({DEFAULT_SOURCE_SUITE})")
    _run("refresh package lists", ["apt-get", "update", "-qq"], log)
    # Another apt-get (an unattended upgrade, a second harness) may hold dpkg's lock: wait.
    _run("install build dependencies",
         ["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq",
          "--no-install-recommends", "cmake", "gcc", "make",
          "dpkg-dev", "xz-utils", "libssl-dev", f"postgresql-server-dev-{major}"], log)
    _run("read the source index", ["apt-get", *private_apt, "update", "-qq"], log)
    src = cache / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    _run("download the source package",
         ["apt-get", *private_apt, "source", "--download-only", SOURCE_PACKAGE], log, cwd=src)
    dsc = next(src.glob("*.dsc"))
    _run("unpack the source package", ["dpkg-source", "-x", "--no-check", dsc.name, "tree"],
         log, cwd=src)
    build.mkdir(parents=True, exist_ok=True)
    pg_config = bindir / "pg_config"
    _run("configure (Apache edition, telemetry off)",
         ["cmake", str(src / "tree"), "-DCMAKE_BUILD_TYPE=Release", f"-DPG_CONFIG={pg_config}",
          "-DAPACHE_ONLY=1", "-DSEND_TELEMETRY_DEFAULT=OFF", "-DUSE_TELEMETRY=OFF",
          "-DREGRESS_CHECKS=OFF", "-DTAP_CHECKS=OFF", "-DWARNINGS_AS_ERRORS=OFF"],
         log, cwd=build, logfile=cache / "configure.log")
    _run("compile", ["make", f"-j{os.cpu_count() or 2}"], log, cwd=build,
         logfile=cache / "compile.log")
    _run("install", ["make", "install"], log, cwd=build, logfile=cache / "install.log")


def require_timescaledb(bindir: Path, log: Callable[[str], None] = print) -> None:
    """Make sure TimescaleDB is installed for `bindir`'s PostgreSQL, or say what to install."""
    if timescaledb_installed(bindir):
        return
    if not _is_debian():
        raise TimescaleDBMissing(
            f"TimescaleDB is not installed for PostgreSQL {pg_major(bindir)}. Install it "
            "(package timescaledb-2-postgresql-<version> from Timescale's repository, or your "
            "distribution's), or set TEST_DATABASE_URL to a server that has it"
        )
    install_from_debian_source(bindir, log=log)
    if not timescaledb_installed(bindir):
        raise TimescaleDBMissing("the TimescaleDB build finished but the extension is not found")
