"""`make serve` (scripts/serve.sh): the demo shop on its production server — gunicorn, DEBUG off, static files
collected and served by WhiteNoise, uploaded photos served from MEDIA_ROOT.

The script itself is started (as `make serve` runs it) on a free port against this run's test database, with its
own STATIC_ROOT, MEDIA_ROOT and secret key file, one worker and no model warm-up (loading TensorFlow would only
make the test slower; the warm-up is shop/wsgi.py's, which the script does not change)."""
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 90  # seconds; the server is usually up in a few
# The variables the script or the settings read: the test's server gets none of the caller's.
CLEARED = ("DJANGO_", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SERVE_", "SECURE_",
           "CELERY_", "CACHE_URL", "STATIC_ROOT", "MEDIA_ROOT", "DATABASE_URL", "WEB_", "MAX_REQUESTS", "HOST",
           "PORT", "WARM_UP")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url():
    from django.db import connection

    db = connection.settings_dict
    credentials = db["USER"] or "postgres"
    if db["PASSWORD"]:
        credentials += f":{db['PASSWORD']}"
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def server(django_db_setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(CLEARED)}
    env.update({
        "HOST": "127.0.0.1", "PORT": str(port), "PY": sys.executable, "WEB_WORKERS": "1", "WARM_UP": "0",
        "DATABASE_URL": database_url(), "DB_CONN_MAX_AGE": "0",  # no idle connection left for the flush
        "STATIC_ROOT": str(folder / "static"), "MEDIA_ROOT": str(folder / "media"),
        "SECRET_KEY_FILE": str(folder / "secret-key"), "PYTHONUNBUFFERED": "1",
    })
    log_path = folder / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(["bash", "scripts/serve.sh"], cwd=ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"scripts/serve.sh exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                requests.get(base + "/products/", timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the server did not answer within {STARTUP_TIMEOUT} s:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.3)
        yield {"url": base, "port": port, "folder": folder, "log": log_path}
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        except ProcessLookupError:
            pass


@pytest.fixture
def product_with_photo(server, transactional_db, settings):
    """A product whose photo is stored after the server started (as a staff upload would be).

    The image row is written with ``bulk_create`` (no post_save signal): no analysis, so no model is loaded."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from catalog.models import Product, ProductImage

    settings.MEDIA_ROOT = server["folder"] / "media"
    product = Product.objects.create(sku="SERVE-1", name="Served Linen Shirt", gender="Men",
                                     sub_category="Topwear", article_type="Shirts", base_colour="White",
                                     price="39.00")
    photo = sorted((ROOT / "demo_data" / "products" / "images").glob("*.jpg"))[0].read_bytes()
    name = default_storage.save("products/served-shirt.jpg", ContentFile(photo))
    ProductImage.objects.bulk_create([ProductImage(product=product, file=name, is_primary=True)])
    return product, photo


def test_a_product_page_renders_with_debug_off_and_its_photo_and_styles_are_served(server, product_with_photo):
    product, photo = product_with_photo
    page = requests.get(server["url"] + product.get_absolute_url(), timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Server"].startswith("gunicorn")
    html = page.text
    assert "Served Linen Shirt" in html and "€39.00" in html

    # The stylesheet and script under content-hashed names (collectstatic with the manifest storage) ...
    stylesheet = re.search(r'<link rel="stylesheet" href="(/static/css/shop\.[0-9a-f]{12}\.css)">', html)
    script = re.search(r'<script src="(/static/js/shop\.[0-9a-f]{12}\.js)"', html)
    assert stylesheet and script, html[:1500]
    # ... served by WhiteNoise: the right type, cached for good (the name changes with the content), compressed.
    css = requests.get(server["url"] + stylesheet[1], headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "immutable" in css.headers["Cache-Control"] and "max-age=315360000" in css.headers["Cache-Control"]
    assert css.headers["Content-Encoding"] == "gzip"
    assert css.content == (ROOT / "static" / "css" / "shop.css").read_bytes()
    js = requests.get(server["url"] + script[1], timeout=30)
    assert js.status_code == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert js.content == (ROOT / "static" / "js" / "shop.js").read_bytes()
    # The unhashed name is served too, with a short cache life (it may change on the next deployment).
    plain = requests.get(server["url"] + "/static/css/shop.css", timeout=30)
    assert plain.status_code == 200 and plain.headers["Content-Type"].startswith("text/css")
    assert "immutable" not in plain.headers["Cache-Control"]
    assert requests.get(server["url"] + "/static/css/no-such.css", timeout=30).status_code == 404

    # The photo, stored after the server started, is served from MEDIA_ROOT.
    image_url = product.images.get().file.url
    assert f'src="{image_url}"' in html
    image = requests.get(server["url"] + image_url, timeout=30)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert image.content == photo

    # Access log on the server's output.
    assert f'"GET {product.get_absolute_url()} HTTP/1.1" 200' in server["log"].read_text()


def test_an_unknown_url_gets_the_shops_404_page_not_a_debug_page(server):
    response = requests.get(server["url"] + "/no-such-page/", timeout=30)
    assert response.status_code == 404 and response.headers["Content-Type"].startswith("text/html")
    html = response.text
    assert "<title>Page not found · Buy Me That Look</title>" in html
    assert 'href="/products/"' in html and re.search(r'href="/static/css/shop\.[0-9a-f]{12}\.css"', html)
    assert "DEBUG = True" not in html and "URLconf" not in html and "Traceback" not in html


def test_media_are_served_only_from_media_root(server):
    for path in ("/media/../shop/settings.py", "/media/%2e%2e/shop/settings.py", "/media/", "/media/products/"):
        connection = http.client.HTTPConnection("127.0.0.1", server["port"], timeout=30)
        connection.request("GET", path)  # http.client sends the path as written ("..": not removed)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (400, 404), (path, response.status)
        assert b"SECRET_KEY" not in body and b"Index of" not in body, path


def test_production_settings_are_in_force(server):
    # ALLOWED_HOSTS: the address it listens on and localhost, nothing else.
    for host, status in ((f"127.0.0.1:{server['port']}", 200), (f"localhost:{server['port']}", 200),
                         ("shop.attacker.example", 400)):
        response = requests.get(server["url"] + "/products/", headers={"Host": host}, timeout=30)
        assert response.status_code == status, host
    # Plain HTTP: no redirect to HTTPS, security headers on.
    response = requests.get(server["url"] + "/products/", timeout=30, allow_redirects=False)
    assert response.status_code == 200
    assert response.headers["X-Content-Type-Options"] == "nosniff" and response.headers["X-Frame-Options"] == "DENY"
    # A secret key was generated for the server, readable by its owner only.
    key_file = server["folder"] / "secret-key"
    assert len(key_file.read_text().strip()) >= 50 and key_file.stat().st_mode & 0o777 == 0o600
