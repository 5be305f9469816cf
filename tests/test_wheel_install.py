"""The wheel is the product: built from the checkout, installed outside it, it migrates a database.

No network: the wheel is built with the dev venv's setuptools (--no-build-isolation) and
installed --no-deps into a fresh venv; that venv sees the dev venv's third-party packages through
a .pth line (a directory named in a .pth file has its own .pth files ignored, so the dev venv's
editable tsfleet stays invisible, and the test asserts it does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import psycopg
import pytest

from loader import __version__

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DATABASE_URL", "TSFLEET_SQL_DIR", "VIRTUAL_ENV")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources (no stale build/ folder can leak into it)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    for name in ("loader", "sql"):
        shutil.copytree(REPO / name, source / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "--wheel-dir", str(out), str(source)],
                   check=True, capture_output=True, text=True, env=clean_env(), timeout=300)
    (built,) = out.glob("tsfleet-*.whl")
    return built


def install_in_fresh_venv(wheel: Path, root: Path) -> Path:
    """A fresh venv at root (outside the checkout) with the wheel installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True).stdout.strip()
    # Third-party dependencies come from the dev venv (offline); tsfleet itself does not.
    Path(site, "dev-venv-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                    "--no-index", "--quiet", str(wheel)],
                   check=True, capture_output=True, text=True, env=clean_env(), timeout=300)
    return root


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_in_fresh_venv(wheel, tmp_path_factory.mktemp("venv"))


def test_the_wheel_holds_every_sql_file_and_the_license(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "sql").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    assert len(shipped) > 60
    missing = [p for p in shipped if f"loader/{p}" not in names]
    assert missing == []
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert wheel.name.startswith(f"tsfleet-{__version__}-")


def test_the_installed_wheel_migrates_a_fresh_database_from_any_directory(
        venv: Path, empty_db_url: str, tmp_path: Path) -> None:
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import loader; print(loader.__file__)"],
                           cwd=tmp_path, check=True, capture_output=True, text=True,
                           env=clean_env()).stdout.strip()
    assert Path(where).is_relative_to(venv), f"tsfleet imported from {where}, not the wheel"
    tsfleet = str(venv / "bin" / "tsfleet")
    env = clean_env(DATABASE_URL=empty_db_url)

    version = subprocess.run([tsfleet, "--version"], cwd=tmp_path, capture_output=True, text=True,
                             env=env, timeout=60)
    assert version.stdout.strip() == f"tsfleet, version {__version__}"

    done = subprocess.run([tsfleet, "migrate"], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    expected = sorted({p.name.split(".")[0]
                       for p in (REPO / "sql" / "migrations").glob("[0-9]*.sql")})
    assert done.stdout.count("0001.create_schemas") == 1
    with psycopg.connect(empty_db_url) as conn:
        applied = [r[0].split(".")[0] for r in conn.execute(
            "select migration_id from _yoyo_migration order by migration_id")]
        routines = conn.execute(
            "select count(*) from pg_proc where pronamespace = 'ingest'::regnamespace").fetchone()
    assert applied == expected
    assert routines[0] > 0, "functions were not re-applied from the wheel's sql/functions"

    listed = subprocess.run([tsfleet, "migrate", "--list"], cwd=tmp_path, capture_output=True,
                            text=True, env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip().endswith(f"{len(expected)} applied, 0 pending")


def test_an_installed_package_without_migrations_fails_loudly(
        wheel: Path, empty_db_url: str, tmp_path: Path) -> None:
    """The old failure: 0 migrations found, "no pending migrations", exit 0. Now exit 1."""
    venv = install_in_fresh_venv(wheel, tmp_path / "venv")
    package = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import loader, os; print(os.path.dirname(loader.__file__))"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=clean_env()).stdout.strip())
    shutil.rmtree(package / "sql" / "migrations")
    failed = subprocess.run([str(venv / "bin" / "tsfleet"), "migrate"], cwd=tmp_path,
                            capture_output=True, text=True,
                            env=clean_env(DATABASE_URL=empty_db_url), timeout=120)
    assert failed.returncode == 1
    assert "no migrations found" in failed.stderr
    assert "no pending migrations" not in failed.stdout
