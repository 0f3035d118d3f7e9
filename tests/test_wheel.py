"""The plugin as a package: the wheel built by ``pyproject.toml`` installs into a fresh virtual environment
and works there, outside the checkout.

The wheel is built from a copy of the working tree's ``pyproject.toml``, top-level files, ``recommender/`` and
``ml/`` in a temporary directory, so that setuptools' ``build/`` and ``*.egg-info`` never land in the checkout
(and a stale ``build/lib`` can never slip an old module into the wheel). It is installed with ``--no-deps``
into a new virtual environment whose own site-packages comes first on ``sys.path``; the heavy dependencies
(TensorFlow, Keras, Django, ...) are found through a ``.pth`` file pointing at this project's environment,
appended after it. A snippet then runs there with its working directory outside the checkout, imports the
packages, checks that they and their data files come from the fresh environment, and embeds a photo with
the real embedder weights read from the installed package.

No database: nothing here is marked ``django_db``.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DIST_NAME = "django_buy_the_look"
PACKAGES = ("recommender", "ml")
# The demo shop and the repository's tooling never ship.
NOT_SHIPPED = ("catalog", "shop", "tests", "bench", "scripts", "demo_data", "templates", "static", "docs")
# Kinds of package data that must be installed: each pattern matches at least one installed file, and every
# tracked file of recommender/ and ml/ is installed anyway (fnmatch: ``*`` crosses directories).
REQUIRED = {
    "templates": "recommender/templates/recommender/*.html",
    "static files": "recommender/static/recommender/*",
    "migrations": "recommender/migrations/0001_*.py",
    "template tags": "recommender/templatetags/*.py",
    "management commands": "recommender/management/commands/*.py",
    "categories": "ml/categories.json",
    "Keras weights": "ml/weights/*.weights.h5",
    "TFLite models": "ml/weights/*.tflite",
    "model configs": "ml/weights/*.json",
    "model cards": "ml/weights/*.md",
    "embedder weights": "ml/weights/embed-*.weights.h5",
}
TIMEOUT = 240  # seconds, per subprocess

# Runs inside the fresh environment: python -I (no PYTHONPATH, no user site, no current directory on sys.path).
SNIPPET = textwrap.dedent('''
    import hashlib, json, pkgutil, sys
    from pathlib import Path

    checkout = Path(sys.argv[1]).resolve()
    env = Path(sys.prefix).resolve()
    assert checkout not in [Path(p).resolve() for p in sys.path if p], sys.path

    import recommender, recommender.conf, recommender.migrations, ml, ml.embed
    modules = {m.__name__: str(Path(m.__file__).resolve())
               for m in (recommender, recommender.conf, recommender.migrations, ml, ml.embed)}
    for name, path in modules.items():
        assert Path(path).is_relative_to(env), f"{name} imported from {path}, not from {env}"

    # Package data, as the installed packages see it.
    site = Path(recommender.__file__).resolve().parents[1]
    installed = sorted(str(p.relative_to(site)) for pkg in ("recommender", "ml")
                       for p in (site / pkg).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    migrations = sorted(m.name for m in pkgutil.iter_modules(recommender.migrations.__path__))

    # recommender.conf reads BUY_THE_LOOK through Django's settings.
    from django.conf import settings as django_settings
    django_settings.configure(BUY_THE_LOOK={"K": 3})
    assert recommender.conf.settings.K == 3

    # The real embedder, its weights found relative to the installed ml package.
    import numpy as np
    from PIL import Image

    embedder = ml.embed.Embedder()
    weights = Path(embedder.weights).resolve()
    assert weights.is_relative_to(Path(ml.__file__).resolve().parent), weights
    photo = Image.new("RGB", (64, 128), (245, 245, 245))
    photo.paste((180, 30, 40), (16, 20, 48, 70))      # a red "top"
    photo.paste((30, 40, 120), (18, 70, 46, 120))     # a blue "bottom"
    vectors = embedder.embed([photo])
    print(json.dumps({
        "modules": modules,
        "installed": installed,
        "migrations": migrations,
        "weights": str(weights),
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "version": embedder.version,
        "shape": list(vectors.shape),
        "norm": float(np.linalg.norm(vectors[0])),
        "finite": bool(np.isfinite(vectors).all()),
        "tensorflow": sys.modules["tensorflow"].__file__,
    }))
''')


def run(*args, **kwargs):
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                                    f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def tracked_files():
    """Files of recommender/ and ml/ under version control (they must all ship)."""
    out = run("git", "-C", ROOT, "ls-files", "-z", "--", *PACKAGES).stdout
    return sorted(f for f in out.split("\0") if f and (ROOT / f).exists())


def test_every_python_directory_is_a_package():
    """find_packages() (``[tool.setuptools.packages.find]``) skips a directory without an __init__.py."""
    missing = sorted({str(path.parent.relative_to(ROOT)) for package in PACKAGES
                      for path in (ROOT / package).rglob("*.py")
                      if "__pycache__" not in path.parts and not (path.parent / "__init__.py").exists()})
    assert not missing, f"directories with Python files but no __init__.py (they would not ship): {missing}"


def copy_sources(dest: Path):
    """pyproject.toml and the other top-level files it may read (README, requirements), plus the packages."""
    dest.mkdir()
    for item in ROOT.iterdir():
        if item.is_file() and not item.name.startswith("."):
            shutil.copy2(item, dest / item.name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    source, out = tmp / "source", tmp / "dist"
    copy_sources(source)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "--disable-pip-version-check", "-w", out, source)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_contents(wheel):
    assert wheel.name == f"{DIST_NAME}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        infos = zf.infolist()
        metadata = zf.read(f"{DIST_NAME}-0.1.0.dist-info/METADATA").decode()
    names = {info.filename for info in infos}
    tops = {name.split("/")[0] for name in names}
    assert tops == {"recommender", "ml", f"{DIST_NAME}-0.1.0.dist-info"}, tops
    shipped_by_mistake = sorted(n for n in names if n.split("/")[0] in NOT_SHIPPED)
    assert not shipped_by_mistake
    missing = sorted(set(tracked_files()) - names)
    assert not missing, f"tracked files left out of the wheel (see [tool.setuptools.package-data]): {missing}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    # Size: the weights (~52 MB) and some code, nothing else of weight.
    weights = sum(i.file_size for i in infos if i.filename.startswith("ml/weights/"))
    others = sum(i.file_size for i in infos if not i.filename.startswith("ml/weights/"))
    assert 40e6 < weights < 70e6, weights
    assert others < 5e6, f"{others} bytes besides the weights"
    assert wheel.stat().st_size < 70e6, wheel.stat().st_size

    assert "Name: django-buy-the-look" in metadata
    assert "Requires-Python: >=3.11" in metadata
    assert "Requires-Dist: Django==" in metadata and "Requires-Dist: tensorflow-cpu==" in metadata


def test_installs_and_runs_outside_the_checkout(wheel, tmp_path):
    env_dir, workdir = tmp_path / "env", tmp_path / "elsewhere"
    workdir.mkdir()
    run(sys.executable, "-m", "venv", "--without-pip", env_dir)
    python = env_dir / "bin" / "python"
    # The project's pip installs into the fresh environment (pip --python), the wheel only, no index.
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
        "--disable-pip-version-check", wheel)

    # The fresh site-packages first, then this project's environment for the dependencies.
    fresh_site = Path(run(python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                      .stdout.strip())
    project_sites = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    assert str(fresh_site) not in project_sites
    (fresh_site / "zz_project_dependencies.pth").write_text("".join(f"{p}\n" for p in project_sites))

    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", PYTHONDONTWRITEBYTECODE="1")
    result = run(python, "-I", "-c", SNIPPET, ROOT, cwd=workdir, env=env)
    report = json.loads(result.stdout.strip().splitlines()[-1])

    for name, path in report["modules"].items():
        assert Path(path).is_relative_to(fresh_site.resolve()), (name, path)
        assert not Path(path).is_relative_to(ROOT), (name, path)
    # TensorFlow itself comes from the project's environment: nothing heavy was installed again.
    assert any(Path(report["tensorflow"]).is_relative_to(Path(p).resolve()) for p in project_sites)

    installed = set(report["installed"])
    absent = [kind for kind, pattern in REQUIRED.items() if not any(fnmatch(f, pattern) for f in installed)]
    assert not absent, f"no {absent} installed"
    missing = sorted(f for f in tracked_files() if f not in installed)
    assert not missing, f"tracked files not installed: {missing}"
    migrations = {p.stem for p in (ROOT / "recommender" / "migrations").glob("[0-9]*.py")}
    assert migrations and migrations <= set(report["migrations"]), (migrations, report["migrations"])
    assert not [f for f in installed if f.split("/")[0] in NOT_SHIPPED]

    assert Path(report["weights"]).is_relative_to(fresh_site.resolve())
    checkout_weights = ROOT / "ml" / "weights" / Path(report["weights"]).name
    assert report["weights_sha256"] == hashlib.sha256(checkout_weights.read_bytes()).hexdigest()
    assert report["version"] == "embed-mnv2-pa-v4"
    assert report["shape"] == [1, 256]
    assert report["finite"] and abs(report["norm"] - 1.0) < 1e-3
