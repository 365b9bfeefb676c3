"""The package builds a wheel (`python -m build`) that installs and imports on its own: in a
fresh virtual environment with nothing else, so no Django and no provider SDK."""
from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]


def test_the_wheel_builds_installs_alone_and_imports(tmp_path):
    out = tmp_path / "dist"
    # No isolation: the build backend (setuptools) is the one installed, no index is asked.
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(PACKAGE)], check=True, capture_output=True,
                   timeout=300)
    [wheel] = out.glob("aforo_sdk-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith("/METADATA"))
    assert {"aforo_sdk/__init__.py", "aforo_sdk/batcher.py", "aforo_sdk/meter.py",
            "aforo_sdk/integrations/litellm.py"} <= names
    assert "Name: aforo-sdk" in metadata
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist")]
    assert all("extra ==" in line for line in requires), requires  # only the litellm extra

    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-index", "--no-deps", "-q",
                    str(wheel)], check=True, timeout=300)
    probe = ("import sys, aforo_sdk; from aforo_sdk import Aforo, meter, Blocked; "
             "assert 'django' not in sys.modules; print(aforo_sdk.__version__)")
    done = subprocess.run([str(python), "-c", probe], check=True, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.stdout.strip() == "0.1.0"
