"""Security: who may read and write each API endpoint, CSRF on forms, throttling of search by photo, safe
stored names, content types of served images, ``check --deploy`` with production settings."""
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from catalog.models import Product, ProductImage
from recommender.models import ImageAnalysis
from robust_inputs import TEXT, encode, jpeg, media_files, photo

ROOT = Path(__file__).resolve().parents[2]

# Every operation of the API and who may use it. "read": everyone; "write": staff only (session or token);
# "public": everyone, by design (search by photo is a POST that changes nothing).
OPERATIONS = {
    ("/api/products/", "get"): "read",
    ("/api/products/", "post"): "write",
    ("/api/products/{id}/", "get"): "read",
    ("/api/products/{id}/", "put"): "write",
    ("/api/products/{id}/", "patch"): "write",
    ("/api/products/{id}/", "delete"): "write",
    ("/api/products/{id}/images/", "get"): "read",
    ("/api/products/{id}/images/", "post"): "write",
    ("/api/products/{id}/look/", "get"): "read",
    ("/api/search/", "post"): "public",
    ("/api/images/{id}/analysis/", "get"): "read",
    ("/api/images/{id}/analysis/", "post"): "write",
}
ROLES = ["anonymous", "user", "user-token", "staff", "staff-token"]


@pytest.fixture
def clients(db):
    User = get_user_model()
    user = User.objects.create_user("shopper", password="pw-shopper-1")
    staff = User.objects.create_user("manager", password="pw-manager-1", is_staff=True)
    made = {role: APIClient() for role in ROLES}
    made["user"].force_login(user)
    made["staff"].force_login(staff)
    made["user-token"].credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    made["staff-token"].credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    return made


@pytest.fixture
def shop(db):
    from django.core.files.base import ContentFile

    product = Product.objects.create(sku="SEC-1", name="Secure Shirt", gender="Men", master_category="Apparel",
                                     sub_category="Topwear", article_type="Shirts", base_colour="Blue", price="30")
    image = ProductImage(product=product, is_primary=True)
    image.file = ContentFile(jpeg(), name="shirt.jpg")
    image.save()
    return product, image


def state(settings, product):
    product.refresh_from_db()
    return (Product.objects.count(), ProductImage.objects.count(), ImageAnalysis.objects.count(),
            product.name, product.updated_at, media_files(settings.MEDIA_ROOT))


def call(client, path, method, product, image):
    url = path.replace("{id}", str(image.pk if path.startswith("/api/images/") else product.pk))
    upload = SimpleUploadedFile("p.jpg", jpeg(seed=7), content_type="image/jpeg")
    if method == "get":
        return client.get(url)
    if method == "delete":
        return client.delete(url)
    if path == "/api/products/":
        return client.post(url, {"sku": "NEW-1", "name": "New"}, format="json")
    if path == "/api/products/{id}/" and method == "put":
        return client.put(url, {"sku": product.sku, "name": "Replaced", "price": "31.00"}, format="json")
    if method == "patch":
        return client.patch(url, {"name": "Changed"}, format="json")
    if path.endswith("/images/") or path == "/api/search/":
        return client.post(url, {"image": upload}, format="multipart")
    return client.post(url)


def test_the_matrix_names_every_operation_of_the_schema(client, db):
    schema = client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    documented = {(path, method) for path, item in schema.json()["paths"].items() for method in item
                  if method in {"get", "post", "put", "patch", "delete"}}
    assert documented == set(OPERATIONS)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", list(OPERATIONS), ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_permission_matrix(clients, shop, settings, fake_pipeline, role, operation):
    product, image = shop
    path, method = operation
    kind = OPERATIONS[operation]
    before = state(settings, product) if Product.objects.filter(pk=product.pk).exists() else None
    response = call(clients[role], path, method, product, image)
    allowed = kind in ("read", "public") or role.startswith("staff")
    if allowed:
        assert 200 <= response.status_code < 300, (response.status_code, response.content[:500])
    else:
        assert response.status_code in (401, 403), (response.status_code, response.content[:500])
        assert state(settings, product) == before, "a refused write changed something"


def test_hidden_products_stay_hidden_from_everyone_but_staff(clients, shop):
    product, image = shop
    product.is_active = False
    product.save()
    for role in ROLES:
        codes = [clients[role].get(url).status_code for url in
                 (f"/api/products/{product.pk}/", f"/api/products/{product.pk}/images/",
                  f"/api/products/{product.pk}/look/")]
        assert codes == ([200] * 3 if role.startswith("staff") else [404] * 3), role
    listed = clients["anonymous"].get("/api/products/").json()
    assert product.sku not in [p["sku"] for p in listed["results"]]


# --------------------------------------------------------------------------------------------------
# CSRF


@pytest.fixture
def staff_user(db):
    return get_user_model().objects.create_user("csrf-staff", password="pw-csrf-staff-1", is_staff=True,
                                                is_superuser=True)


def csrf_token(client, url):
    client.get(url)
    return client.cookies["csrftoken"].value


def test_forms_refuse_posts_without_the_csrf_token(staff_user, shop):
    product, _ = shop
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post("/admin/login/", {"username": "csrf-staff", "password": "pw-csrf-staff-1"}).status_code == 403
    assert anonymous.post("/search/", {"photo": SimpleUploadedFile("a.jpg", jpeg())}).status_code == 403
    staff = Client(enforce_csrf_checks=True)
    staff.force_login(staff_user)
    before = ProductImage.objects.count()
    for url, data in [
        ("/admin/catalog/productimage/add/", {"product": product.pk, "file": SimpleUploadedFile("a.jpg", jpeg())}),
        ("/admin/catalog/product/add/", {"sku": "X1", "name": "X"}),
        (f"/admin/catalog/product/{product.pk}/delete/", {"post": "yes"}),
        ("/admin/logout/", {}),
    ]:
        assert staff.post(url, data).status_code == 403, url
    assert ProductImage.objects.count() == before and Product.objects.filter(pk=product.pk).exists()
    # With the token the same client gets through.
    token = csrf_token(anonymous, "/admin/login/")
    response = anonymous.post("/admin/login/", {"username": "csrf-staff", "password": "pw-csrf-staff-1",
                                                "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_api_session_writes_need_the_csrf_token_and_token_auth_does_not(staff_user, shop):
    product, _ = shop
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(staff_user)
    response = session.patch(f"/api/products/{product.pk}/", {"name": "Forged"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    token = csrf_token(session, "/admin/")
    response = session.patch(f"/api/products/{product.pk}/", {"name": "Honest"}, format="json",
                             HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    key = Token.objects.create(user=staff_user).key
    tokened = APIClient(enforce_csrf_checks=True)
    tokened.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert tokened.patch(f"/api/products/{product.pk}/", {"name": "By token"}, format="json").status_code == 200


# --------------------------------------------------------------------------------------------------
# Throttling


@pytest.mark.parametrize("door", ["api", "page"])
def test_search_by_photo_is_throttled(db, monkeypatch, door):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                                 "search": "3/minute"})
    client = APIClient()
    codes = []
    for _ in range(5):
        upload = SimpleUploadedFile("notes.jpg", TEXT, content_type="image/jpeg")
        if door == "api":
            response = client.post("/api/search/", {"image": upload}, format="multipart")
        else:
            response = client.post("/search/", {"photo": upload})
        codes.append(response.status_code)
    assert codes == [400, 400, 400, 429, 429]
    text = response.content.decode().lower()
    assert "throttled" in text or "too many" in text
    assert "Retry-After" in response.headers
    # Another visitor (another address) is not affected.
    other = APIClient(REMOTE_ADDR="10.9.8.7")
    if door == "api":
        response = other.post("/api/search/", {"image": SimpleUploadedFile("n.jpg", TEXT)}, format="multipart")
    else:
        response = other.post("/search/", {"photo": SimpleUploadedFile("n.jpg", TEXT)})
    assert response.status_code == 400


# --------------------------------------------------------------------------------------------------
# Stored names and served content types

NAME_PATTERN = re.compile(r"^products/[a-z0-9_-]+/[0-9a-f]{32}\.(jpg|png|gif|webp)$")


@pytest.mark.parametrize("door", ["api-image", "api-product", "admin"])
@pytest.mark.parametrize("filename", ["../../evil.jpg", "..\\..\\evil.jpg", "/etc/passwd.jpg", "evil.php.jpg",
                                      "x" * 300 + ".jpg", "ünï cödé ☃.jpg", ".htaccess"])
def test_uploaded_names_never_reach_the_file_system(staff_user, shop, settings, tmp_path, door, filename):
    product, _ = shop
    upload = SimpleUploadedFile(filename, jpeg(seed=3), content_type="image/jpeg")
    if door == "api-image":
        client = APIClient()
        client.force_authenticate(staff_user)
        response = client.post(f"/api/products/{product.pk}/images/", {"image": upload}, format="multipart")
        assert response.status_code == 201, response.content
    elif door == "api-product":
        client = APIClient()
        client.force_authenticate(staff_user)
        response = client.post("/api/products/", {"sku": "../../../tmp/pwn", "name": "Pwn", "image": upload},
                               format="multipart")
        assert response.status_code == 201, response.content
    else:
        client = Client()
        client.force_login(staff_user)
        before = ProductImage.objects.count()
        response = client.post("/admin/catalog/productimage/add/", {"product": product.pk, "file": upload,
                                                                      "position": 3})
        if filename == ".htaccess":  # Django's image field wants an image extension: refused, named, not stored
            assert response.status_code == 200 and "extension" in response.content.decode()
            assert ProductImage.objects.count() == before and not list(tmp_path.rglob(".htaccess"))
            return
        assert response.status_code == 302
    image = ProductImage.objects.order_by("-pk").first()
    assert NAME_PATTERN.match(image.file.name), image.file.name
    media = Path(settings.MEDIA_ROOT).resolve()
    assert Path(image.file.path).resolve().parent.parent.parent == media
    files = [p.resolve() for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(media) for p in files), files  # nothing written outside MEDIA_ROOT
    assert not [p for p in files if "evil" in p.name or "passwd" in p.name or p.name == ".htaccess"]


@pytest.mark.parametrize("name, data, content_type", [
    ("photo.jpg", jpeg(seed=11), "image/jpeg"),
    ("photo.jpg", encode(photo((64, 64)), "PNG"), "image/png"),       # a PNG called .jpg
    ("drawing.svg", encode(photo((64, 64)).convert("P"), "GIF"), "image/gif"),  # a GIF called .svg
    ("page.html", encode(photo((64, 64)), "WEBP"), "image/webp"),     # a WebP called .html
])
def test_stored_images_are_served_with_their_real_content_type(staff_user, shop, settings, name, data,
                                                                content_type):
    settings.ROOT_URLCONF = "robust_urls"
    product, _ = shop
    client = APIClient()
    client.force_authenticate(staff_user)
    response = client.post(f"/api/products/{product.pk}/images/",
                           {"image": SimpleUploadedFile(name, data, content_type="text/html")}, format="multipart")
    assert response.status_code == 201
    url = response.json()["url"].replace("http://testserver", "")
    served = Client().get(url)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == content_type
    assert served.headers.get("X-Content-Type-Options") == "nosniff"
    assert b"".join(served.streaming_content) == data


def test_api_and_pages_answer_with_their_content_types(client, shop):
    product, _ = shop
    assert client.get("/api/products/").headers["Content-Type"] == "application/json"
    assert client.get(product.get_absolute_url()).headers["Content-Type"].startswith("text/html")
    assert client.get("/api/schema/").headers["Content-Type"].startswith("application/vnd.oai.openapi")


# --------------------------------------------------------------------------------------------------
# Deployment checks


def production_env(**extra):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DEBUG"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "shop.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "shop.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://shop.example.com",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
        "CACHE_URL": "redis://127.0.0.1:6379/1",
    })
    env.update(extra)
    return env


def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=production_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=production_env(SECRET_KEY=""),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


# --------------------------------------------------------------------------------------------------
# Stored text is escaped wherever it is shown

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_hostile_product_text_is_escaped_on_every_page(admin_client, fake_pipeline, django_capture_on_commit_callbacks):
    from django.core.files.base import ContentFile

    with django_capture_on_commit_callbacks(execute=True):
        top = Product.objects.create(sku="XSS-TOP", name=f"Top {XSS}", gender="Women", sub_category="Topwear",
                                     article_type="Tops", base_colour=XSS[:32], price="5", description=XSS)
        look = Product.objects.create(sku="XSS-LOOK", name=f"Look {XSS}", gender="Women", master_category="Outfit",
                                      price="0")
        for number, product in enumerate((top, look)):
            image = ProductImage(product=product, is_primary=True)
            image.file = ContentFile(jpeg((120, 200), seed=number + 40), name="x.jpg")
            image.save()
    look_page = Client().get(look.get_absolute_url()).content.decode()
    assert "btl__row" in look_page and "Top &lt;script&gt;" in look_page  # the widget shows the hostile top
    pages = [look_page, Client().get(top.get_absolute_url()).content.decode(),
             Client().get("/products/?q=XSS").content.decode()]
    for url in ("/admin/catalog/product/", f"/admin/catalog/product/{top.pk}/change/", "/admin/catalog/productimage/",
                "/admin/recommender/imageanalysis/"):
        pages.append(admin_client.get(url).content.decode())
    for html in pages:
        assert "<script>alert" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")


@pytest.mark.parametrize("door", ["api", "page"])
def test_a_made_up_forwarded_for_header_neither_escapes_the_limit_nor_locks_out_another_visitor(
        db, monkeypatch, settings, door):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                                 "search": "3/minute"})

    def search(client, **headers):
        upload = SimpleUploadedFile("notes.jpg", TEXT, content_type="image/jpeg")
        if door == "api":
            return client.post("/api/search/", {"image": upload}, format="multipart", headers=headers).status_code
        return client.post("/search/", {"photo": upload}, headers=headers).status_code

    spoofer = APIClient(REMOTE_ADDR="10.1.1.1")
    codes = [search(spoofer, X_FORWARDED_FOR=f"1.2.3.{n}") for n in range(6)]
    assert codes == [400, 400, 400, 429, 429, 429]  # a new made-up address each time changes nothing
    # The spoofer wrote another visitor's address in the header: that visitor is not locked out.
    victim = APIClient(REMOTE_ADDR="10.2.2.2")
    assert search(victim) == 400
    # Behind one trusted proxy, the proxy's X-Forwarded-For names the visitor.
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "TRUSTED_PROXIES": 1}
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")
    assert [search(proxy, X_FORWARDED_FOR="203.0.113.7") for _ in range(4)] == [400, 400, 400, 429]
    assert search(proxy, X_FORWARDED_FOR="203.0.113.8") == 400


# --------------------------------------------------------------------------------------------------
# Errors Django raises itself are JSON on API paths


@pytest.mark.parametrize("path, headers, status", [
    ("/api/no-such-endpoint/", {}, 404),
    ("/api/products/1/look/", {"HTTP_HOST": "evil.example"}, 400),   # a Host not in ALLOWED_HOSTS
    ("/api/products/1/look/?colour=%00", {}, 400),                    # the shop's NUL-byte guard
])
def test_errors_raised_by_django_on_api_paths_are_json(db, client, path, headers, status):
    response = client.get(path, **headers)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"detail"} and response.json()["detail"]


def test_a_server_error_on_an_api_path_is_json(db, settings):
    from django.test import Client

    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "PRODUCT_ADAPTER": "test_security_parts.ExplodingAdapter"}
    response = Client(raise_request_exception=False).get("/api/images/1/analysis/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Server error; please try again later."}


def test_html_pages_and_drf_errors_are_left_alone(db, client):
    assert "text/html" in client.get("/no-such-page/")["Content-Type"]
    response = client.get("/api/products/999999/look/")
    assert response.status_code == 404 and response.json() == {"detail": "No Product matches the given query."}
