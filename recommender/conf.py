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

SETTINGS_NAME = "BUY_THE_LOOK"

#: Dimension of the stored article vectors. It is part of the database schema (``vector(256)``), so it is
#: a constant of the app's migrations, not a setting; an embedder of another dimension is refused with a
#: clear error when its first vector arrives (see ``recommender.analysis``).
EMBEDDING_DIM = 256

DEFAULTS = {
    # How many recommendations per article row (widget, look API, search by photo).
    "K": 6,
    # Upper bound a visitor may ask for through ``?k=`` on the API.
    "MAX_K": 24,
    # Look categories shown, in display order, with their row labels.
    "CATEGORIES": ("top", "bottom", "dress", "footwear", "bag"),
    "CATEGORY_LABELS": {
        "top": "Top", "bottom": "Bottom", "dress": "Dress", "footwear": "Footwear", "bag": "Bag",
    },
    # The pipeline parts, as dotted paths; a shop may swap one (e.g. its own embedder).
    "PIPELINE": {
        "pose": "ml.pose.PoseGate",
        "gender": "ml.gender.GenderClassifier",
        "detector": "ml.detect.ArticleDetector",
        "embedder": "ml.embed.Embedder",
    },
    # HNSW index parameters (used by the migration that builds the index; changing them needs a new
    # migration) and the search-time candidate list size (``hnsw.ef_search``, raised to the LIMIT when smaller).
    "HNSW_M": 16,
    "HNSW_EF_CONSTRUCTION": 64,
    "EF_SEARCH": 64,
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
    # Detected articles under this confidence are neither shown nor used as a product's own article.
    "MIN_ARTICLE_CONFIDENCE": 0.25,
    # How prices are shown on the recommendation cards ({amount} is the product's price, two decimals).
    "PRICE_FORMAT": "€{amount}",
    # Widget cache lifetime in seconds (it is also invalidated whenever a product or an analysis changes).
    "CACHE_TIMEOUT": 60 * 60,
    # Largest photo a visitor may upload to search by photo (page and API), in bytes.
    "SEARCH_MAX_UPLOAD_BYTES": 8 * 1024 * 1024,
    # Analyse product images when they are created or replaced (catalog's ``product_image_changed``).
    # With a broker the task is queued; without one (Celery eager) it runs in-process right after the
    # commit, except during the bulk commands listed in EAGER_DEFER_COMMANDS, where the image is only
    # marked "queued" for ``manage.py analyse --pending``. False: never analyse on save.
    "ANALYSE_ON_SAVE": True,
    "EAGER_DEFER_COMMANDS": ("import_catalogue", "import_looks", "loaddata"),
    # Images per batch when ``manage.py analyse`` embeds catalogue photos that are not full shots.
    "EMBED_BATCH_SIZE": 32,
    # Task retries on transient errors (database or broker connection lost).
    "TASK_MAX_RETRIES": 5,
    # A task whose worker process died during the analysis (a crash, the out-of-memory killer) is delivered
    # again (late acknowledgement). After this many such interruptions in a row the analysis is failed instead,
    # so that one poison image cannot keep a worker busy forever.
    "TASK_MAX_INTERRUPTIONS": 3,
    # Seconds an analysis task may run in a worker before it is stopped and the analysis failed (a hung model
    # must not hold a worker forever); the worker process is killed 60 s later if the model does not give back.
    "TASK_TIME_LIMIT": 600,
    # The product model recommendations are drawn from. The recommender's tables point at
    # ``catalog.Product``/``catalog.ProductImage`` through their migrations; a shop with its own product
    # model sets these (before the first migration) and provides the same fields: gender, base_colour,
    # price, is_active, look_category, an ``images`` relation with ``file`` and ``sha256``.
    "PRODUCT_MODEL": "catalog.Product",
    "PRODUCT_IMAGE_MODEL": "catalog.ProductImage",
}

#: Settings whose values are dotted paths (or dicts of them) resolved on demand.
IMPORT_STRINGS = ("PIPELINE",)


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

    def compatible_genders(self, gender):
        """Product genders an article of ``gender`` may be matched with; ``None`` means any."""
        if not gender:
            return None
        return tuple(self.GENDER_POLICY.get(gender, (gender,)))

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


settings = RecommenderSettings(DEFAULTS)


def _reload(*, setting, **kwargs):
    if setting == SETTINGS_NAME:
        settings.reload()


setting_changed.connect(_reload)
