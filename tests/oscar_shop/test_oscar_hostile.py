"""Hostile uploads and permissions at the django-oscar shop's doors (issue 15, item 7).

The robustness suite's corpus of bad files (``tests/robustness/robust_inputs.py``: empty, text renamed .jpg,
truncated, a 30000×30000 PNG bomb, 1×1, SVG, over the size limit, and the odd-but-valid ones) goes through
each door the plugin has in an Oscar shop:

- search by photo, ``POST /api/search/`` and the page ``/buy-the-look/search/``: a 400 naming the problem
  (or a correct answer), never a 500, nothing stored;
- an Oscar ``catalogue.ProductImage.original``, saved through the ORM (an import, a script) and through
  Oscar's own dashboard product form as staff: Oscar's form refuses what it cannot read; whatever is stored
  ends as a failed analysis with a readable message, the product page still renders, no vectors are left
  (a good photo replaced by a bad one takes its vectors along);

and the permission checks of ``tests/robustness/test_security.py`` in this shop's settings (DRF's default
authentication: session and HTTP Basic; no token app installed): re-analysis is staff-only and session
writes need the CSRF token, the look and analysis APIs hide non-public Oscar products from visitors, the
recommender's admin needs staff, the search throttle cannot be dodged with a made-up header, and errors that
Django raises itself under ``/api/`` are JSON (``recommender.middleware.ApiErrorsAsJson``).

The pipeline is the weightless test one of ``tests/robustness/robust_parts.py`` (``BUY_THE_LOOK["PIPELINE"]``).
"""
import base64
import html
import io
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image, ImageOps
from rest_framework.test import APIClient

from oscar_factories import Catalogue, Product, ProductImage, add_image
from recommender.adapters.oscar import OscarAdapter
from recommender.models import DetectedArticle, ImageAnalysis

# The corpus and the weightless pipeline parts live with the robustness tests (one copy of each).
ROBUSTNESS = Path(__file__).resolve().parents[1] / "robustness"
if str(ROBUSTNESS) not in sys.path:
    sys.path.insert(0, str(ROBUSTNESS))

from robust_inputs import BAD_INPUT_IDS, BAD_INPUTS, TEST_UPLOAD_LIMIT, TEXT, jpeg, media_files  # noqa: E402
from robust_parts import FAKE_PIPELINE  # noqa: E402

pytestmark = pytest.mark.django_db

SEARCH_PAGE = "/buy-the-look/search/"


@pytest.fixture(autouse=True)
def _weightless_and_unthrottled(settings, monkeypatch):
    """The test pipeline parts, the corpus' upload limit for search photos, the search throttle lifted (its
    own tests lower it again)."""
    from rest_framework.throttling import ScopedRateThrottle

    from recommender import pipeline

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                                 "search": "100000/minute"})
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "PIPELINE": dict(FAKE_PIPELINE),
                             "SEARCH_MAX_UPLOAD_BYTES": TEST_UPLOAD_LIMIT}
    pipeline.reset()
    yield
    pipeline.reset()


@pytest.fixture
def catalogue():
    return Catalogue()


@pytest.fixture
def make_product(catalogue, django_capture_on_commit_callbacks):
    """An Oscar product with one photo, created and analysed (eagerly, after its commit) as a shop's import does."""

    def make(title, data, *, product_class="T-shirts", gender="Women", categories=("Clothing > Tops",)):
        with django_capture_on_commit_callbacks(execute=True):
            return catalogue.product(title, product_class, gender=gender, colour="Black", categories=categories,
                                     photo_bytes=data)

    return make


@pytest.fixture
def tee(make_product):
    return make_product("Hostile tee", jpeg((120, 200), seed=5))


def snapshot(settings):
    return {
        "files": media_files(settings.MEDIA_ROOT),
        "products": Product.objects.count(),
        "images": ProductImage.objects.count(),
        "analyses": ImageAnalysis.objects.count(),
        "articles": DetectedArticle.objects.count(),
    }


def upload(item):
    return SimpleUploadedFile(item.name, item.data, content_type=item.content_type)


def analysis_error(item):
    """The error a stored file of ``item`` gets from its analysis: the decoding problems are the search's
    (same checks); "over-limit" is over the upload limit of a door, a stored 60 kB JPEG is analysed."""
    return None if item.key == "over-limit" else item.search_error


def error_text(text):
    """The error messages of a page: form error lists, the search page's error notes, Oscar's error blocks."""
    found = re.findall(r'class="(?:errorlist|errornote|btl-search__errors|error-block)[^"]*"[^>]*>'
                       r'(.*?)</(?:ul|p|span|div)>', text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>|\s+", " ", " ".join(found))).strip()


# --------------------------------------------------------------------------------------------------
# Search by photo: the API and the page


@pytest.mark.parametrize("door", ["api-search", "search-page"])
@pytest.mark.parametrize("item", BAD_INPUTS, ids=BAD_INPUT_IDS)
def test_search_by_photo_with_a_hostile_upload(tee, settings, door, item):
    before = snapshot(settings)
    client = APIClient()
    if door == "api-search":
        response = client.post("/api/search/", {"image": upload(item)}, format="multipart")
    else:
        response = client.post(SEARCH_PAGE, {"photo": upload(item)})
    text = response.content.decode()
    assert response.status_code < 500, text[:2000]
    assert snapshot(settings) == before, "search by photo must never store anything"
    if item.search_error is None:
        assert response.status_code == 200, (item.key, text[:1000] if door == "api-search" else error_text(text))
        if door == "api-search":
            body = json.loads(text)
            assert body["is_full_shot"] is True
            rows = {row["category"]: row["recommendations"] for row in body["rows"]}
            assert list(rows) == ["top", "footwear"]
            assert [card["id"] for card in rows["top"]] == [tee.pk]  # an Oscar product, as Oscar describes it
            assert rows["top"][0]["url"].endswith(tee.get_absolute_url())
            assert (body["width"], body["height"]) == ImageOps.exif_transpose(Image.open(io.BytesIO(item.data))).size
        else:
            assert "btl__rows" in text and f'data-product="{tee.pk}"' in text
    else:
        assert response.status_code == 400, (item.key, response.status_code, text[:500])
        if door == "api-search":
            assert response["Content-Type"] == "application/json"
            message = text
        else:
            assert "Search by photo" in text and "oscar" in text.lower()  # the page, inside Oscar's layout
            message = error_text(text)
        assert re.search(item.search_error, message), f"{item.key} via {door}: {message[:1000]!r}"


def test_the_search_page_is_shown_inside_oscars_layout(client, tee):
    """The plugin's page extends the adapter's ``page_template`` (Oscar has no ``base.html``; before, the
    page was a 500 ``TemplateDoesNotExist`` in an Oscar shop)."""
    response = client.get(SEARCH_PAGE)
    assert response.status_code == 200
    text = response.content.decode()
    assert 'class="btl btl-search"' in text and 'id="content_inner"' in text  # Oscar's layout.html
    assert OscarAdapter.page_template == "oscar/layout.html"
    with open(Path(__file__).resolve().parents[1] / "fixtures" / "street_full_body_woman.jpg", "rb") as photo:
        response = client.post(SEARCH_PAGE, {"photo": photo, "gender": "Women"})
    assert response.status_code == 200 and f'data-product="{tee.pk}"' in response.content.decode()


@pytest.mark.parametrize("door", ["api-search", "search-page"])
def test_a_declared_huge_upload_is_refused_unread_at_oscars_search_doors(settings, door):
    """With ``recommender.middleware.UploadLimits`` in the shop's MIDDLEWARE (docs/oscar-shop.md): a body
    declaring 30 MB is refused before it is read with a 413 naming the limit — JSON on the API; on the page
    the message alone (Oscar's layout cannot be rendered before Oscar's BasketMiddleware ran: before, a 500);
    Oscar's own /search/ is not mistaken for the plugin's page."""
    assert "recommender.middleware.UploadLimits" in settings.MIDDLEWARE  # as docs/oscar-shop.md says
    client = Client()
    path = "/api/search/" if door == "api-search" else SEARCH_PAGE
    response = client.post(path, {"q": "x"}, CONTENT_LENGTH=str(30 * 1024 * 1024))
    assert response.status_code == 413
    limit = re.compile(r"(?i)30\.0 MB; files may be at most 59 KB here")
    if door == "api-search":
        assert limit.search(response.json()["detail"]), response.json()
    else:
        assert limit.search(response.content.decode()), response.content[-2000:]
    oscar_search = client.post("/search/", {"q": "x"}, CONTENT_LENGTH=str(30 * 1024 * 1024))
    assert oscar_search.status_code == 413 and "Search by photo" not in oscar_search.content.decode()


# --------------------------------------------------------------------------------------------------
# A bad file as an Oscar product image: through the ORM, and through Oscar's dashboard


def assert_analysed_as_expected(client, admin_client, product, image, item):
    analysis = ImageAnalysis.objects.get(image_id=image.pk)
    expected = analysis_error(item)
    if expected is None:
        assert analysis.status == "done", (item.key, analysis.error)
        assert DetectedArticle.objects.filter(analysis=analysis).exists()
    else:
        assert analysis.status == "failed", (item.key, analysis.status)
        assert re.search(expected, analysis.error), (item.key, analysis.error)
        assert not DetectedArticle.objects.filter(analysis=analysis).exists(), "a failed analysis keeps no vectors"
    page = client.get(product.get_absolute_url())
    assert page.status_code == 200 and "Product Information" in page.content.decode()  # Oscar's page renders
    payload = client.get(f"/api/images/{image.pk}/analysis/").json()
    assert payload["status"] == analysis.status and payload["error"] == analysis.error
    # the recommender's admin shows the analysis (its overlay draws on the stored file) without failing
    assert admin_client.get(f"/admin/recommender/imageanalysis/{analysis.pk}/change/").status_code == 200
    return analysis


@pytest.mark.parametrize("how", ["new", "replaced"])
@pytest.mark.parametrize("item", BAD_INPUTS, ids=BAD_INPUT_IDS)
def test_a_hostile_file_saved_as_an_oscar_product_image(make_product, client, admin_client,
                                                        django_capture_on_commit_callbacks, how, item):
    """Saved through the ORM, as a shop's import or script does (Oscar's model checks nothing)."""
    if how == "new":
        product = make_product(f"Upload {item.key}", item.data)
        image = product.images.get()
    else:
        product = make_product(f"Upload {item.key}", jpeg((120, 200), seed=9))
        image = product.images.get()
        old = set(DetectedArticle.objects.filter(analysis__image_id=image.pk).values_list("pk", flat=True))
        assert old and ImageAnalysis.objects.get(image_id=image.pk).status == "done"
        with django_capture_on_commit_callbacks(execute=True):
            image.original.save(item.name, ContentFile(item.data), save=False)
            image.save()
        assert not DetectedArticle.objects.filter(pk__in=old).exists(), "the replaced photo's vectors remain"
    assert_analysed_as_expected(client, admin_client, product, image, item)


class FormFields(HTMLParser):
    """The values a browser would send for a page's form (inputs, checked boxes, selected options, text areas)."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, []
        self.select, self.options, self.textarea = None, [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("id") == self.form_id
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name:
            kind = attrs.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.data.append((name, attrs.get("value", "on")))
            elif kind not in ("file", "submit", "button", "image", "reset"):
                self.data.append((name, attrs.get("value") or ""))
        elif tag == "select" and name:
            self.select, self.options = name, []
        elif tag == "option" and self.select:
            self.options.append((attrs.get("value", ""), "selected" in attrs))
        elif tag == "textarea" and name:
            self.textarea = [name, ""]

    def handle_data(self, data):
        if self.textarea:
            self.textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select:
            chosen = [value for value, selected in self.options if selected]
            self.data.extend((self.select, value) for value in chosen)
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.data.append(tuple(self.textarea))
            self.textarea = None


def form_data(text, form_id):
    parser = FormFields(form_id)
    parser.feed(text)
    data = {}
    for name, value in parser.data:
        data.setdefault(name, []).append(value)
    return {name: values if len(values) > 1 else values[0] for name, values in data.items()}


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("oscar-staff", email="staff@example.com", password="pw-staff-1",
                                                is_staff=True, is_superuser=True)


#: what Oscar's dashboard image field (Django's ImageField: Pillow must open and verify it) refuses itself
OSCAR_FORM_REFUSES = {"empty", "text-as-jpg", "png-30000x30000", "svg"}


@pytest.mark.parametrize("item", BAD_INPUTS, ids=BAD_INPUT_IDS)
def test_a_hostile_file_uploaded_through_oscars_dashboard(make_product, staff, settings, client, admin_client,
                                                          django_capture_on_commit_callbacks, item):
    """Staff add the file in Oscar's dashboard product form (its images formset): Oscar's own image field
    refuses what Pillow cannot open (a form error, nothing stored); what it stores is analysed like any image."""
    product = make_product(f"Dashboard {item.key}", jpeg((120, 200), seed=3))
    good = product.images.get()
    dashboard = Client()
    dashboard.force_login(staff)
    url = f"/dashboard/catalogue/products/{product.pk}/"
    page = dashboard.get(url)
    assert page.status_code == 200
    data = form_data(page.content.decode(), "create_update_product_form")
    assert data["title"] == product.title and data["images-TOTAL_FORMS"]
    slot = next(n for n in range(int(data["images-TOTAL_FORMS"])) if not data.get(f"images-{n}-id"))
    data[f"images-{slot}-original"] = upload(item)
    before = snapshot(settings)
    with django_capture_on_commit_callbacks(execute=True):
        response = dashboard.post(url, data)
    text = response.content.decode()
    assert response.status_code in (200, 302), text[:2000]
    added = product.images.exclude(pk=good.pk)
    if item.key in OSCAR_FORM_REFUSES:  # refused by Oscar's form: it says why, nothing is stored
        assert response.status_code == 200, (item.key, response.status_code)
        message = error_text(text)
        assert re.search(r"(?i)valid image|not an image|corrupt|empty", message), (item.key, message)
        assert not added.exists() and snapshot(settings) == before
    else:  # stored (a truncated JPEG, a 1×1 PNG pass Oscar's check): the analysis names the problem
        assert response.status_code == 302, (item.key, error_text(text))
        assert response["Location"].startswith("/dashboard/"), response["Location"]
        image = added.get()
        assert image.original.read() == item.data
        assert_analysed_as_expected(client, admin_client, product, image, item)
    # the first, good photo is untouched by the second upload
    assert ImageAnalysis.objects.get(image_id=good.pk).status == "done"
    assert DetectedArticle.objects.filter(analysis__image_id=good.pk).exists()


# --------------------------------------------------------------------------------------------------
# Permissions

ROLES = ["anonymous", "user", "user-basic", "staff", "staff-basic", "staff-token"]


@pytest.fixture
def clients(db):
    User = get_user_model()
    user = User.objects.create_user("shopper", email="shopper@example.com", password="pw-shopper-1")
    manager = User.objects.create_user("manager", email="manager@example.com", password="pw-manager-1",
                                       is_staff=True)
    made = {role: APIClient() for role in ROLES}
    made["user"].force_login(user)
    made["staff"].force_login(manager)

    def basic(name, password):
        return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()

    made["user-basic"].credentials(HTTP_AUTHORIZATION=basic("shopper", "pw-shopper-1"))
    made["staff-basic"].credentials(HTTP_AUTHORIZATION=basic("manager", "pw-manager-1"))
    # DRF's TokenAuthentication is not configured in this shop: a token header authenticates no one
    made["staff-token"].credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef0123456789abcdef01234567")
    return made


def analysis_state(image):
    analysis = ImageAnalysis.objects.get(image_id=image.pk)
    return analysis.status, analysis.attempts, analysis.finished_at, analysis.updated_at, \
        sorted(DetectedArticle.objects.filter(analysis=analysis).values_list("pk", flat=True))


def test_the_shop_authenticates_the_api_by_session_and_basic_auth(settings):
    """What this test shop's REST_FRAMEWORK allows: DRF's defaults (no token app installed)."""
    from rest_framework.settings import api_settings

    assert "DEFAULT_AUTHENTICATION_CLASSES" not in settings.REST_FRAMEWORK
    assert [cls.__name__ for cls in api_settings.DEFAULT_AUTHENTICATION_CLASSES] == ["SessionAuthentication",
                                                                                      "BasicAuthentication"]
    assert "rest_framework.authtoken" not in settings.INSTALLED_APPS


@pytest.mark.parametrize("role", ROLES)
def test_analysing_again_is_for_staff_only(clients, tee, monkeypatch, role):
    from recommender import hooks

    image = tee.images.get()
    before = analysis_state(image)
    queued = []
    real_queue = hooks.queue_analysis
    monkeypatch.setattr(hooks, "queue_analysis", lambda image_id: queued.append(image_id) or real_queue(image_id))
    response = clients[role].post(f"/api/images/{image.pk}/analysis/")
    if role in ("staff", "staff-basic"):
        assert response.status_code == 202, response.content[:500]
        assert response.json()["image"] == image.pk and queued == [image.pk]
        assert analysis_state(image)[0] == "done"  # analysed again (eagerly)
    else:
        assert response.status_code in (401, 403), (response.status_code, response.content[:500])
        assert response["Content-Type"] == "application/json" and response.json()["detail"]
        assert queued == [] and analysis_state(image) == before, "a refused request changed the analysis"
    # reading an analysis is public
    assert clients[role].get(f"/api/images/{image.pk}/analysis/").status_code == 200


def test_session_writes_need_the_csrf_token(tee):
    manager = get_user_model().objects.create_user("csrf-manager", email="csrf@example.com", password="pw-csrf-1",
                                                   is_staff=True)
    image = tee.images.get()
    before = analysis_state(image)
    session = APIClient(enforce_csrf_checks=True)
    session.force_login(manager)
    response = session.post(f"/api/images/{image.pk}/analysis/")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    assert analysis_state(image) == before
    session.get(SEARCH_PAGE)  # a page with a form sets the CSRF cookie
    token = session.cookies["csrftoken"].value
    response = session.post(f"/api/images/{image.pk}/analysis/", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 202, response.content[:500]
    # and the search page (a form) refuses a post without the token
    anonymous = Client(enforce_csrf_checks=True)
    assert anonymous.post(SEARCH_PAGE, {"photo": SimpleUploadedFile("a.jpg", jpeg())}).status_code == 403


@pytest.mark.parametrize("how", ["not public", "parent not public"])
def test_non_public_oscar_products_are_hidden_from_visitors_but_not_from_staff(clients, make_product, catalogue,
                                                                              how):
    look = make_product("Secret look", jpeg((120, 200), seed=21), product_class="Looks", categories=("Looks",))
    if how == "not public":
        hidden = look
        hidden.is_public = False
        hidden.save()
    else:  # a child product whose parent is withdrawn
        parent = catalogue.product("Secret parent", "Looks", structure="parent", price=None, categories=("Looks",))
        hidden = catalogue.product("Secret child", "Looks", structure="child", parent=parent)
        add_image(hidden, jpeg((120, 200), seed=22))
        ImageAnalysis.objects.filter(product_id=hidden.pk).delete()
        parent.is_public = False
        parent.save()
    image = hidden.images.first()
    for role in ROLES:
        look_status = clients[role].get(f"/api/products/{hidden.pk}/look/").status_code
        analysis_status = clients[role].get(f"/api/images/{image.pk}/analysis/").status_code
        if role in ("staff", "staff-basic"):
            assert (look_status, analysis_status) == (200, 200), role
        else:
            assert (look_status, analysis_status) == (404, 404), (role, look_status, analysis_status)
    page = Client().get(hidden.get_absolute_url())
    assert page.status_code == 404  # as Oscar's own product page


def test_the_recommenders_admin_needs_staff(tee, admin_client):
    from django.contrib.auth.models import Permission

    User = get_user_model()
    analysis = ImageAnalysis.objects.get(product_id=tee.pk)
    pages = ["/admin/recommender/imageanalysis/", f"/admin/recommender/imageanalysis/{analysis.pk}/change/"]
    shopper = Client()
    shopper.force_login(User.objects.create_user("admin-shopper", email="s@example.com", password="pw-s-1"))
    staff_without_rights = Client()
    staff_without_rights.force_login(User.objects.create_user("admin-clerk", email="c@example.com",
                                                              password="pw-c-1", is_staff=True))
    for url in pages:
        for visitor in (Client(), shopper):
            response = visitor.get(url)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
        assert staff_without_rights.get(url).status_code == 403, url
        assert admin_client.get(url).status_code == 200, url
    before = analysis_state(tee.images.get())
    action = {"action": "reanalyse", "_selected_action": [analysis.pk]}
    for visitor in (Client(), shopper, staff_without_rights):
        assert visitor.post(pages[0], action).status_code in (302, 403)
    assert analysis_state(tee.images.get()) == before
    # a staff member given the view right may look, not act
    clerk = User.objects.get(username="admin-clerk")
    clerk.user_permissions.add(Permission.objects.get(codename="view_imageanalysis"))
    assert staff_without_rights.get(pages[0]).status_code == 200


# --------------------------------------------------------------------------------------------------
# Throttling: the page and the API share one counter, a made-up X-Forwarded-For changes nothing


@pytest.mark.parametrize("door", ["api", "page"])
def test_search_by_photo_is_throttled_and_the_limit_cannot_be_dodged(db, monkeypatch, door):
    from rest_framework.throttling import ScopedRateThrottle

    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES,
                                                                 "search": "3/minute"})

    def search(client, **headers):
        file = SimpleUploadedFile("notes.jpg", TEXT, content_type="image/jpeg")
        if door == "api":
            return client.post("/api/search/", {"image": file}, format="multipart", headers=headers)
        return client.post(SEARCH_PAGE, {"photo": file}, headers=headers)

    spoofer = APIClient(REMOTE_ADDR="10.1.1.1")
    responses = [search(spoofer, X_FORWARDED_FOR=f"1.2.3.{n}") for n in range(5)]
    assert [r.status_code for r in responses] == [400, 400, 400, 429, 429]
    assert "Retry-After" in responses[-1].headers
    assert re.search(r"(?i)throttled|too many", responses[-1].content.decode())
    # the other door shares the counter
    other_door = (APIClient(REMOTE_ADDR="10.1.1.1").post(SEARCH_PAGE, {"photo": SimpleUploadedFile("n.jpg", TEXT)})
                  if door == "api" else
                  APIClient(REMOTE_ADDR="10.1.1.1").post("/api/search/", {"image": SimpleUploadedFile("n.jpg", TEXT)}))
    assert other_door.status_code == 429
    # another visitor, whose address the spoofer wrote in the header, is not locked out
    assert search(APIClient(REMOTE_ADDR="1.2.3.1")).status_code == 400


# --------------------------------------------------------------------------------------------------
# Errors raised by Django on /api/ paths are JSON


class ExplodingOscarAdapter(OscarAdapter):
    """An Oscar adapter whose image table lookup fails (a server error inside an API view)."""

    def get_image_model(self):
        raise RuntimeError("the shop's image table is gone")


def test_the_json_errors_middleware_is_first(settings):
    assert settings.MIDDLEWARE[0] == "recommender.middleware.ApiErrorsAsJson"


@pytest.mark.parametrize("method, path, extra, status", [
    ("get", "/api/no-such-endpoint/", {}, 404),
    ("get", "/api/products/1/look/", {"HTTP_HOST": "evil.example"}, 400),      # a Host not in ALLOWED_HOSTS
    ("post", "/api/search/", {"data": {f"f{n}": "x" for n in range(1200)}}, 400),  # too many fields
    ("put", "/api/search/", {}, 405),
    ("get", "/api/products/999999/look/", {}, 404),
])
def test_errors_on_api_paths_are_json(client, method, path, extra, status):
    response = getattr(client, method)(path, **extra)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail"} and body["detail"], body


def test_a_server_error_on_an_api_path_is_json(settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "PRODUCT_ADAPTER": f"{__name__}.ExplodingOscarAdapter"}
    response = Client(raise_request_exception=False).get("/api/images/1/analysis/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Server error; please try again later."}


def test_oscars_html_pages_are_left_alone(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and "text/html" in response["Content-Type"]
    assert "text/html" in client.get(SEARCH_PAGE)["Content-Type"]
