"""The recommender's settings: one dict ``BUY_THE_LOOK`` in the shop's settings, read through ``settings``.

Modelled on Django REST framework's ``api_settings``::

    from recommender.conf import settings
    settings.K                      # 6 unless BUY_THE_LOOK["K"] says otherwise
    settings.PIPELINE["embedder"]   # a dotted path ...
    settings.part("embedder")       # ... resolved lazily to the class it names

Every key, its default and its meaning are in ``DEFAULTS`` below (and in ``docs/add-to-your-shop.md``).
Values are read on first access and cached; Django's ``setting_changed`` signal (``override_settings``
in tests) drops the cache.

Keys not listed in ``DEFAULTS`` are refused with an ``ImproperlyConfigured`` naming them, so a typo in a
shop's settings does not silently fall back to a default.
"""
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from ml.detect import ARTICLE_FLOORS

from .taxonomy import LOOK_CATEGORIES, LOOK_CATEGORY_LABELS

SETTINGS_NAME = "BUY_THE_LOOK"

#: Dimension of the stored article vectors. It is part of the database schema (``vector(256)``), so it is
#: a constant of the app's migrations, not a setting; an embedder of another dimension is refused with a
#: clear error when its first vector arrives (see ``recommender.analysis``).
EMBEDDING_DIM = 256
#: Dimension of the stored colour descriptors: one per colour word of ``ml.colour.WORDS`` (schema, too).
COLOUR_DIM = 26
#: Kind descriptor length (``ml.kind_head``: the catalogue article types it tells apart); a head with another
#: number of types needs a migration of ``DetectedArticle.kind``.
KIND_DIM = 46

DEFAULTS = {
    # How many recommendations per article row (widget, look API, search by photo).
    "K": 6,
    # Upper bound a visitor may ask for through ``?k=`` on the API.
    "MAX_K": 24,
    # Look categories shown, in display order, with their row labels.
    "CATEGORIES": LOOK_CATEGORIES,
    "CATEGORY_LABELS": LOOK_CATEGORY_LABELS,
    # The pipeline parts, as dotted paths; a shop may swap one (e.g. its own embedder).
    "PIPELINE": {
        "pose": "ml.pose.PoseGate",
        "gender": "ml.gender.GenderClassifier",
        "detector": "ml.detect.ArticleDetector",
        "embedder": "ml.embed.Embedder",
        # reads each article's colours (None: no colour descriptors, look rows ignore colour)
        "colour": "ml.colour.ColourReader",
        # rules out full shots from the embedding before the pose gate in catalogue ingest (None: the gate
        # runs on every photo); only used with the embedder it was trained for (ml/weights/SHOT_TEST.md)
        "shot_test": "ml.shot_test.ShotTest",
        # a second opinion on the detector's boxes of the categories in ml.detect.HEAD_CHECKS (a "dress" over a
        # coat and trousers is dropped); None: every detection above its floor is kept
        "category_head": "ml.category_head.CategoryHead",
        # what kind of article each vector shows (ml/weights/KIND_HEAD.md), compared by the look query with
        # KIND_WEIGHT; None: no kind descriptors
        "kind_head": "ml.kind_head.KindHead",
    },
    # How much colour counts in a look row: the visual candidates are re-ordered by cosine distance +
    # COLOUR_WEIGHT × colour distance (1 − Bhattacharyya coefficient of the two articles' colour histograms).
    # 0 = visual similarity only. Default chosen by measurement (docs/look-analysis.md, "Colour").
    "COLOUR_WEIGHT": 0.2,
    # Visual candidates per article row that the colour weight re-orders (at least K × OVERFETCH).
    "COLOUR_CANDIDATES": 50,
    # How much the kind of article counts in a look row (ml.kind_head): the visual candidates are re-ordered by
    # + KIND_WEIGHT × (1 − Bhattacharyya coefficient of the two articles' kind distributions). 0: not compared.
    "KIND_WEIGHT": 0.2,
    # A recommendation is labelled "same colour" when its main colour is the article's, "similar colour"
    # when the Bhattacharyya coefficient of their colour histograms is at least this.
    "SIMILAR_COLOUR": 0.6,
    # Search-time HNSW candidate list size (``hnsw.ef_search``, raised to the LIMIT when smaller). The index's
    # build parameters are part of the schema: ``recommender.models.HNSW_M`` / ``HNSW_EF_CONSTRUCTION``.
    # 200: at 1M articles, 64 left 42 of 1,000 look queries with fewer than half of their true 10 nearest
    # (recall@10 0.948, docs/benchmarks-1m.md at commit 7044562); 200 gives 0.989 with 1 (docs/benchmarks-1m.md).
    "EF_SEARCH": 200,
    # ``hnsw.ef_search`` of the product page's look rows only (``look_for``: each row takes COLOUR_CANDIDATES
    # candidates and re-ranks them, so it needs less of the graph than a plain top-k); None: EF_SEARCH.
    # `make bench` / `make bench-1m` measure the rows' recall against exact search for 50, 100 and 200. At 1M
    # articles (docs/benchmarks-1m-rows.md) 100 makes look_for 10 ms faster (p50 33.2 -> 23.2 ms) but 1 row of
    # 150 then shows fewer than half of its exact products (row recall@6 0.9933; 200: 1.0, none), so the default
    # stays EF_SEARCH; a shop that prefers the speed can set it.
    "LOOK_EF_SEARCH": None,
    # Precomputed candidates of the product page's look rows (``recommender.candidates``). A worker stores each
    # row's CANDIDATES_DEPTH nearest inventory articles ahead of time (``manage.py look_candidates``, and after
    # every full-shot analysis), and the page ranks those, plus every inventory article of the row's category
    # changed since, exactly (the same filters, colour and kind weights) instead of walking the HNSW graph: the
    # products of the live search without its graph walks. A row without fresh candidates (none yet, its own
    # article changed since, or more than CANDIDATES_MAX_CHANGES articles of its category changed since) and a
    # page with colour or price filters are searched live. False: always live. Measured by `make bench` and
    # `make bench-1m` (the rows' recall against exact search is the live search's; the page no longer walks graphs).
    "LOOK_CANDIDATES": True,
    "CANDIDATES_DEPTH": 100,
    "CANDIDATES_MAX_CHANGES": 1000,
    # Seconds before a candidate list's computation from which changes still count as "changed since": a margin
    # on top of the writing transactions the computation sees open (``pg_stat_activity``), for sessions of other
    # database roles whose start it cannot see.
    "CANDIDATES_MARGIN": 60,
    # The product page's look statement as a server-side prepared statement of each database connection
    # (``recommender.prepared``): parsed and planned once per connection instead of on every page (psycopg 3 only).
    # False behind a transaction-mode pooler that cannot carry prepared statements (PgBouncer before 1.21, or
    # without max_prepared_statements).
    "PREPARED_STATEMENTS": True,
    # Search the half-precision copies of the article vectors (pgvector ``halfvec`` HNSW indexes, half the
    # size, made by ``manage.py halfvec_indexes``) instead of the float ones; candidates are re-ordered by their
    # full-precision distance. Measured in docs/benchmarks-1m.md (recall, size, latency).
    "HALFVEC": False,
    # The look category of a visitor's photo searched as a whole (nothing detected in it, or a close-up whose
    # detections missed what it shows): "head" — the embedder's category head (``ml.category_head``, trained on
    # catalogue photos and street garment crops) when it has one for the embedder in use, else the vote; "vote" —
    # the category most common among the shop's 10 nearest articles (only categories the shop has).
    "WHOLE_PHOTO_CATEGORY": "head",
    # Rows the approximate search fetches per wanted recommendation before duplicates of a product
    # (several images of one product) are folded; the exact fallback runs when fewer than k remain.
    "OVERFETCH": 3,
    # Which product genders may be recommended for an article of a given gender. "Never the other":
    # men's looks never get women's products and the reverse. Kids get kids' products only (the
    # catalogue's Unisex items are adult sizes). An unknown gender ("") applies no gender filter.
    "GENDER_POLICY": {
        "Men": ("Men", "Unisex"),
        "Women": ("Women", "Unisex"),
        "Boys": ("Boys",),
        "Girls": ("Girls",),
        "Unisex": ("Unisex", "Men", "Women"),
    },
    # Detected articles under this confidence are neither shown nor used as a product's own article ...
    "MIN_ARTICLE_CONFIDENCE": 0.25,
    # ... unless their category has its own floor here ({category: confidence}). The default is the shipped
    # detector's (``ml.detect.ARTICLE_FLOORS``, measured); {} = MIN_ARTICLE_CONFIDENCE for every category.
    "ARTICLE_FLOORS": ARTICLE_FLOORS,
    # How prices are shown on the recommendation cards ({amount} is the product's price, two decimals).
    "PRICE_FORMAT": "€{amount}",
    # Widget cache lifetime in seconds (it is also invalidated whenever a product or an analysis changes).
    "CACHE_TIMEOUT": 60 * 60,
    # Paths answered in JSON by ``recommender.middleware.ApiErrorsAsJson`` when Django itself raises an error.
    "API_PATH_PREFIX": "/api/",
    # How many reverse proxies of the shop's own stand in front of Django. 0 (the default): a visitor is its
    # connection's address and X-Forwarded-For is ignored (a visitor could write anything there to escape
    # the search throttle). Behind one proxy that sets X-Forwarded-For (nginx, a load balancer): 1.
    "TRUSTED_PROXIES": 0,
    # Largest photo a visitor may search with, in pixels (staff uploads may be larger): a photo over it is
    # refused before it is decoded. And the longer side a search photo is decoded to (a JPEG at reduced size
    # from the start): the cost of a search stays bounded whatever the photo.
    "SEARCH_MAX_PIXELS": 16_000_000,
    "SEARCH_DECODE_SIDE": 1600,
    # Largest file any other upload may be (staff image uploads), enforced while the body is read by
    # ``recommender.uploads.SizeLimitedUploadHandler`` (first in FILE_UPLOAD_HANDLERS).
    "MAX_UPLOAD_BYTES": 10 * 1024 * 1024,
    # Largest photo a visitor may upload to search by photo (page and API), in bytes.
    "SEARCH_MAX_UPLOAD_BYTES": 8 * 1024 * 1024,
    # Analyse product images when the shop says they were added or replaced (``recommender.hooks``). With a
    # broker the task is queued; without one (Celery eager) it runs in-process right after the commit, except
    # inside a ``defer_analysis()`` block (bulk imports), where the image is only marked "queued" for
    # ``manage.py analyse --pending``. False: never analyse on save.
    "ANALYSE_ON_SAVE": True,
    # Images per batch when ``manage.py analyse`` embeds catalogue photos that are not full shots.
    "EMBED_BATCH_SIZE": 32,
    # Load the models when a Celery worker process starts, and in web processes that call
    # ``recommender.warmup.start()`` (their WSGI module), so that no visitor waits for them. False: load on first use.
    "WARM_UP": True,
    # Threads per model in each Celery worker process. None: the machine's cores divided by the worker's
    # concurrency (at least 1) — two single-threaded processes on 2 cores analyse more images per second than two
    # that each use both cores (``make bench``, pipeline). Other processes: the BTL_MODEL_THREADS variable.
    "MODEL_THREADS": None,
    # Task retries on transient errors (database or broker connection lost).
    "TASK_MAX_RETRIES": 5,
    # A task whose worker process died during the analysis (a crash, the out-of-memory killer) is delivered
    # again (late acknowledgement). After this many such interruptions in a row the analysis is failed instead,
    # so that one poison image cannot keep a worker busy forever.
    "TASK_MAX_INTERRUPTIONS": 3,
    # Seconds an analysis task may run in a worker before it is stopped and the analysis failed (a hung model
    # must not hold a worker forever); the worker process is killed 60 s later if the model does not give back.
    "TASK_TIME_LIMIT": 600,
    # Celery queue of the analyses of new or changed images (``recommender.hooks``, the admin action, the API):
    # run a worker with ``-Q <this>``. None: Celery's default queue (``task_default_queue``, "celery").
    "ANALYSIS_QUEUE": None,
    # Celery queue of bulk work sent by ``manage.py analyse --queue`` / ``reindex --queue``: served by workers of
    # its own (``-Q looks-bulk``), so that a re-index of the whole catalogue never delays a new upload's analysis.
    "BULK_QUEUE": "looks-bulk",
    # Database alias (a key of DATABASES) of a PostgreSQL streaming read replica. Set: the look and search reads
    # (``look_for``, the look API, search by photo: the nearest-neighbour SQL and the cards' ORM reads) go to it,
    # through ``recommender.routers.ReadReplicaRouter`` (add it to DATABASE_ROUTERS); writes stay on "default".
    # None: everything on "default".
    "READ_REPLICA": None,
    # The shop's product adapter (a dotted path to a ``recommender.adapters.ProductAdapter`` subclass) and the
    # keyword arguments it is built with. Required. Its ``product_model``/``image_model`` are what the
    # recommender's tables point at (read by the first ``migrate``, like ``AUTH_USER_MODEL``).
    "PRODUCT_ADAPTER": None,
    "ADAPTER_OPTIONS": {},
    # Connect the adapter's ready-made receivers at start-up (image/product saved → analysis, re-sync). False:
    # the shop calls ``recommender.hooks`` itself.
    "CONNECT_RECEIVERS": True,
}

class RecommenderSettings:
    """Attribute access to ``BUY_THE_LOOK`` with defaults; see the module docstring."""

    def __init__(self, defaults=None):
        self.defaults = defaults or DEFAULTS
        self._cached = set()
        self._user = None
        self._imported = {}

    @property
    def user_settings(self):
        if self._user is None:
            self._user = dict(getattr(django_settings, SETTINGS_NAME, None) or {})
            unknown = sorted(set(self._user) - set(self.defaults))
            if unknown:
                raise ImproperlyConfigured(
                    f"{SETTINGS_NAME} has unknown key(s) {', '.join(unknown)}; "
                    f"known keys: {', '.join(sorted(self.defaults))}"
                )
        return self._user

    def __getattr__(self, name):
        if name not in self.defaults:
            raise AttributeError(f"invalid {SETTINGS_NAME} setting: {name!r}")
        value = self.user_settings.get(name, self.defaults[name])
        if name == "PIPELINE":
            value = {**self.defaults["PIPELINE"], **value}
        self._cached.add(name)
        setattr(self, name, value)
        return value

    def part(self, name):
        """The class (or factory) configured for pipeline part ``name``, imported on first use."""
        if name not in self._imported:
            path = self.PIPELINE.get(name)
            if not path:
                raise ImproperlyConfigured(f"{SETTINGS_NAME}['PIPELINE'] has no entry {name!r}")
            try:
                self._imported[name] = import_string(path) if isinstance(path, str) else path
            except ImportError as exc:
                raise ImproperlyConfigured(
                    f"{SETTINGS_NAME}['PIPELINE'][{name!r}] = {path!r} cannot be imported: {exc}"
                ) from exc
        return self._imported[name]

    @property
    def adapter_class(self):
        """The class named by ``PRODUCT_ADAPTER``, checked: an ``ImproperlyConfigured`` names what is wrong."""
        if "adapter_class" not in self._imported:
            self._imported["adapter_class"] = load_adapter_class(self.PRODUCT_ADAPTER)
        return self._imported["adapter_class"]

    @property
    def adapter(self):
        """The shop's adapter instance (built once with ``ADAPTER_OPTIONS``)."""
        if "adapter" not in self._imported:
            options = self.ADAPTER_OPTIONS or {}
            if not isinstance(options, dict):
                raise ImproperlyConfigured(f"{SETTINGS_NAME}['ADAPTER_OPTIONS'] must be a dict, got {options!r}")
            try:
                self._imported["adapter"] = self.adapter_class(**options)
            except (TypeError, ValueError) as exc:
                raise ImproperlyConfigured(
                    f"{SETTINGS_NAME}['ADAPTER_OPTIONS'] do not suit {self.PRODUCT_ADAPTER}: {exc}") from exc
        return self._imported["adapter"]

    def compatible_genders(self, gender):
        """Product genders an article of ``gender`` may be matched with; ``None`` means any."""
        if not gender:
            return None
        return tuple(self.GENDER_POLICY.get(gender, (gender,)))

    def floor(self, category):
        """The confidence from which a detected article of ``category`` is stored and shown."""
        return float((self.ARTICLE_FLOORS or {}).get(category, self.MIN_ARTICLE_CONFIDENCE))

    def floors(self):
        """{category: floor} of the look categories (what the pipeline keeps of the detector's boxes)."""
        return {category: self.floor(category) for category in self.CATEGORIES}

    def lowest_floor(self):
        """The smallest floor of any look category."""
        return min(self.floors().values())

    def label(self, category):
        return self.CATEGORY_LABELS.get(category, category.title())

    def reload(self):
        for name in self._cached:
            try:
                delattr(self, name)
            except AttributeError:
                pass
        self._cached.clear()
        self._imported.clear()
        self._user = None


def load_adapter_class(path):
    """Import and check the adapter class ``path`` names (``BUY_THE_LOOK["PRODUCT_ADAPTER"]``)."""
    from .adapters.base import ProductAdapter

    name = f"{SETTINGS_NAME}['PRODUCT_ADAPTER']"
    if not path:
        raise ImproperlyConfigured(
            f"{name} is not set: name the adapter that describes your products, e.g. "
            f"'recommender.adapters.oscar.OscarAdapter' for a django-oscar shop (docs/add-to-your-shop.md)")
    try:
        adapter_class = import_string(path) if isinstance(path, str) else path
    except ImportError as exc:
        raise ImproperlyConfigured(f"{name} = {path!r} cannot be imported: {exc}") from exc
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, ProductAdapter)):
        raise ImproperlyConfigured(f"{name} = {path!r} is not a subclass of recommender.adapters.ProductAdapter")
    # in the order the interface declares them
    missing = [name for name in vars(ProductAdapter) if name in adapter_class.__abstractmethods__]
    if missing:
        raise ImproperlyConfigured(f"{name} = {path!r} does not define {', '.join(missing)}")
    for attribute in ("product_model", "image_model"):
        label = getattr(adapter_class, attribute, "")
        if not (isinstance(label, str) and label.count(".") == 1):
            raise ImproperlyConfigured(
                f"{name} = {path!r}: {attribute} must be 'app_label.ModelName', got {label!r}")
    return adapter_class


settings = RecommenderSettings(DEFAULTS)


def _reload(*, setting, **kwargs):
    if setting == SETTINGS_NAME:
        settings.reload()


setting_changed.connect(_reload)
