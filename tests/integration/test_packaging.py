"""The package as a newcomer meets it: the engine imports without Flask or gevent; an editable
install is quiet; a built wheel, installed on its own, serves the dashboard with its templates and
static files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB_ONLY = ("flask", "flask_sock", "gevent")

ENGINE_WITHOUT_WEB = f"""
import importlib, pkgutil, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {WEB_ONLY!r}:
            raise ImportError(name + " is not installed here")

sys.meta_path.insert(0, Refuse())
import spiral_web.engine as engine
names = [m.name for m in pkgutil.walk_packages(engine.__path__, "spiral_web.engine.")]
for name in names + ["spiral_web.config"]:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {WEB_ONLY!r})
print(",".join(names), "|", ",".join(loaded))
"""


def _run(args: list[str | Path], cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        **kw,
    )


def test_the_engine_imports_without_flask_flask_sock_or_gevent(tmp_path):
    proc = _run([sys.executable, "-c", ENGINE_WITHOUT_WEB], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    names, loaded = (part.strip() for part in proc.stdout.split("|"))
    assert "spiral_web.engine.breath" in names.split(",")
    assert "spiral_web.engine.rituals" in names.split(",")
    assert loaded == ""


def test_create_app_still_imports_from_the_package():
    proc = _run([sys.executable, "-c", "from spiral_web import create_app, Config, Spiral"], ROOT)
    assert proc.returncode == 0, proc.stderr


def _fresh_venv(path: Path) -> Path:
    """A new virtual environment that sees this one's dependencies (read through a .pth line,
    which does not run this environment's own .pth files, so not its editable spiral_web)."""
    venv.EnvBuilder(with_pip=False).create(path)
    python = path / "bin" / "python"
    site = _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], path)
    deps = _run(
        [sys.executable, "-c", "import flask, os; print(os.path.dirname(flask.__path__[0]))"], path
    )
    Path(site.stdout.strip(), "spiral-test-deps.pth").write_text(deps.stdout.strip() + "\n")
    return python


def _pip(python: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # This environment's pip installs into the fresh one; no index: nothing is downloaded.
    return _run([sys.executable, "-m", "pip", "--python", python, *args, "--no-index"], cwd=cwd)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="the build backend comes with the test extra")
    out = tmp_path_factory.mktemp("wheel")
    build = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-w",
            out,
            ROOT,
        ],
        cwd=out,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert "warning" not in build.stderr.lower(), build.stderr
    (path,) = out.glob("spiral_web-*.whl")
    return path


def test_the_wheel_carries_every_template_and_static_file(wheel):
    shipped = set(zipfile.ZipFile(wheel).namelist())
    tracked = _run(["git", "ls-files", "templates", "static"], ROOT).stdout.split()
    assert tracked, "git ls-files found no templates"
    missing = [f for f in tracked if f"spiral_web/{f}" not in shipped]
    assert missing == []


INSTALLED_APP = """
import json, sys
import spiral_web
from spiral_web import create_app

app = create_app({"data_dir": sys.argv[1], "start_ticker": False})
client = app.test_client()
page = client.get("/")
print(json.dumps({
    "package": spiral_web.__file__,
    "templates": app.template_folder,
    "static": app.static_folder,
    "page": page.status_code,
    "dashboard": b'id="timeline-panel"' in page.data,
    "css": client.get("/static/css/spiral.css").status_code,
    "js": client.get("/static/js/dashboard.js").status_code,
}))
app.extensions["spiral"].close()
"""


def test_an_installed_wheel_renders_the_dashboard_with_its_own_files(wheel, tmp_path):
    python = _fresh_venv(tmp_path / "venv")
    install = _pip(python, "install", "--no-deps", wheel, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    run = _run([python, "-c", INSTALLED_APP, tmp_path / "data"], cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    installed = str(tmp_path / "venv")
    for key in ("package", "templates", "static"):
        assert seen[key].startswith(installed), (key, seen[key])  # not the checkout's
    assert seen["page"] == 200 and seen["dashboard"]
    assert seen["css"] == 200 and seen["js"] == 200
    help_text = _run([tmp_path / "venv" / "bin" / "spiral", "--help"], cwd=tmp_path)
    assert help_text.returncode == 0 and "serve" in help_text.stdout


def test_an_editable_install_is_quiet_and_serves_the_checkout(tmp_path):
    pytest.importorskip("hatchling", reason="the build backend comes with the test extra")
    python = _fresh_venv(tmp_path / "venv")
    install = _pip(python, "install", "--no-deps", "--no-build-isolation", "-e", ROOT, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    assert "warning" not in (install.stdout + install.stderr).lower(), install.stderr
    where = _run([python, "-c", "import spiral_web; print(spiral_web.__file__)"], cwd=tmp_path)
    assert where.stdout.strip() == str(ROOT / "spiral_web" / "__init__.py")
