"""System checks of the recommender's configuration (``manage.py check``)."""
from django.conf import settings as django_settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import DEFAULTS, settings


@register(Tags.compatibility)
def check_settings(app_configs, **kwargs):
    messages = []
    try:
        user = settings.user_settings
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="recommender.E001")]
    if not isinstance(user.get("K", 1), int) or not 1 <= user.get("K", 1) <= settings.MAX_K:
        messages.append(Error(f"BUY_THE_LOOK['K'] must be a whole number between 1 and MAX_K ({settings.MAX_K})",
                              id="recommender.E002"))
    unknown = [c for c in settings.CATEGORIES if c not in DEFAULTS["CATEGORIES"]]
    if unknown:
        messages.append(Error(f"BUY_THE_LOOK['CATEGORIES'] has unknown look categories {unknown}",
                              id="recommender.E003"))
    if settings.WHOLE_PHOTO_CATEGORY not in ("head", "vote"):
        messages.append(Error(f"BUY_THE_LOOK['WHOLE_PHOTO_CATEGORY'] must be \"head\" or \"vote\", "
                              f"not {settings.WHOLE_PHOTO_CATEGORY!r}", id="recommender.E004"))
    for name, allow_none in (("EF_SEARCH", False), ("LOOK_EF_SEARCH", True)):
        value = getattr(settings, name)
        if not (value is None and allow_none) and (isinstance(value, bool) or not isinstance(value, int)
                                                   or not 1 <= value <= 1000):
            messages.append(Error(f"BUY_THE_LOOK['{name}'] must be a whole number from 1 to 1000"
                                  + (" or None" if allow_none else "") + f", not {value!r}", id="recommender.E006"))
    for name in ("LOOK_CANDIDATES", "PREPARED_STATEMENTS"):
        if not isinstance(getattr(settings, name), bool):
            messages.append(Error(f"BUY_THE_LOOK['{name}'] must be True or False, not {getattr(settings, name)!r}",
                                  id="recommender.E007"))
    for name, low in (("CANDIDATES_DEPTH", 1), ("CANDIDATES_MAX_CHANGES", 0), ("CANDIDATES_MARGIN", 0)):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            messages.append(Error(f"BUY_THE_LOOK['{name}'] must be a whole number of at least {low}, not {value!r}",
                                  id="recommender.E007"))
    if isinstance(settings.CANDIDATES_DEPTH, int) and settings.CANDIDATES_DEPTH > 1000:
        messages.append(Error("BUY_THE_LOOK['CANDIDATES_DEPTH'] must be at most 1000 (hnsw.ef_search's limit)",
                              id="recommender.E007"))
    floors = settings.ARTICLE_FLOORS
    if not isinstance(floors, dict) or any(
            category not in DEFAULTS["CATEGORIES"] or isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value <= 1 for category, value in floors.items()):
        messages.append(Error(f"BUY_THE_LOOK['ARTICLE_FLOORS'] must map look categories "
                              f"({', '.join(DEFAULTS['CATEGORIES'])}) to confidences from 0 to 1, got {floors!r}",
                              id="recommender.E005"))
    for gender, allowed in settings.GENDER_POLICY.items():
        crossing = {"Men": "Women", "Women": "Men"}.get(gender)
        if crossing and crossing in allowed:
            messages.append(Warning(f"BUY_THE_LOOK['GENDER_POLICY'] lets {gender} looks show {crossing} products",
                                    id="recommender.W002"))
    try:
        settings.adapter
    except ImproperlyConfigured as exc:
        messages.append(Error(str(exc), id="recommender.E020"))
    broker = getattr(django_settings, "CELERY_BROKER_URL", "")
    backend = django_settings.CACHES.get("default", {}).get("BACKEND", "")
    if broker and backend.endswith("LocMemCache"):
        messages.append(Warning(
            "a Celery broker is configured but the cache is process-local (LocMemCache): analyses stored by "
            "the worker cannot invalidate the web process's cached widgets until CACHE_TIMEOUT",
            hint="use a shared cache (e.g. CACHE_URL=redis://127.0.0.1:6379/1 in the demo shop)",
            id="recommender.W001",
        ))
    return messages


@register(Tags.database)
def check_pgvector(app_configs, databases=None, **kwargs):
    """``manage.py check --database default``: pgvector installed and recent enough for iterative scans."""
    from django.db import connections

    messages = []
    for alias in databases or []:
        connection = connections[alias]
        if connection.vendor != "postgresql":
            messages.append(Error(f"database {alias!r} is {connection.vendor}; the recommender needs PostgreSQL "
                                  "with pgvector", id="recommender.E010"))
            continue
        # ``migrate`` runs this check too, before the recommender's first migration creates the extension:
        # so what must hold is that the server can provide pgvector, installed in the database or not yet.
        with connection.cursor() as cursor:
            cursor.execute("SELECT installed_version, default_version FROM pg_available_extensions "
                           "WHERE name = 'vector'")
            row = cursor.fetchone()
        if row is None:
            messages.append(Error(f"the PostgreSQL server of database {alias!r} has no pgvector extension",
                                  hint="install it (scripts/install_pgvector.sh, run by `make setup`), then "
                                       "manage.py migrate creates it in the database",
                                  id="recommender.E011"))
            continue
        row = (row[0] or row[1],)
        version = tuple(int(part) for part in row[0].split(".")[:2] if part.isdigit())
        if version < (0, 8):
            messages.append(Warning(
                f"pgvector {row[0]} has no iterative index scans (0.8+): filtered looks fall back to exact "
                "search more often (slower, still complete)", id="recommender.W010"))
    return messages


def adapter_table_mismatch(using="default"):
    """A sentence explaining that the recommender's tables point at other models than the adapter's, or "".

    The foreign keys are made by the first ``migrate`` from the adapter of that day; a shop that switched
    adapters afterwards has vectors of the old shop's images.
    """
    from django.db import connections

    from .models import ImageAnalysis

    from django.apps import apps

    connection = connections[using]
    table = ImageAnalysis._meta.db_table
    expected = settings.adapter_class.image_model
    try:
        wanted = apps.get_model(expected)._meta.db_table
    except LookupError:
        return f"BUY_THE_LOOK['PRODUCT_ADAPTER'] names image model {expected}, which is not installed"
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f' AND conrelid = %s::regclass "
                "AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'image_id')]",
                [table, table],
            )
            row = cursor.fetchone()
    except Exception:  # tables not created yet
        return ""
    if row is None or row[0].strip('"') == wanted:
        return ""
    return (
        f"the recommender's tables point at table {row[0]} (the adapter used by the first migrate), but "
        f"BUY_THE_LOOK['PRODUCT_ADAPTER'] now describes {expected} (table {wanted}). Their vectors belong to the "
        f"old shop: run `manage.py migrate recommender zero`, `manage.py migrate`, then `manage.py analyse --all` "
        f"(nothing of the shop's own data is touched; the analyses are rebuilt from its images)"
    )


#: How many products the description check looks at (it runs with every ``manage.py check``).
DESCRIPTION_SAMPLE = 500


@register("buy_the_look")
def check_products(app_configs, **kwargs):
    """Products the adapter cannot fully describe (no gender, …), counted per reason, with a few examples."""
    try:
        adapter = settings.adapter
        products = list(adapter.visible_products().order_by("pk")[:DESCRIPTION_SAMPLE])
    except Exception:  # misconfigured (reported by check_settings) or no tables yet
        return []
    reasons, failed = {}, []
    try:
        described = adapter.describe_many(products)  # a few queries for all of them
    except Exception:  # noqa: BLE001 — one bad product: describe them one by one to name it
        described = []
        for product in products:
            try:
                described.append(adapter.describe(product))
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{product.pk} ({type(exc).__name__}: {exc})")
    for facts in described:
        for problem in facts.problems:
            reasons.setdefault(problem, []).append(facts.pk)
    messages = []
    if reasons:
        parts = [f"{len(pks)} {reason} (e.g. {', '.join(str(pk) for pk in pks[:5])})"
                 for reason, pks in sorted(reasons.items())]
        messages.append(Warning(
            f"of {len(products)} products checked, the adapter could not fully describe: " + "; ".join(parts),
            hint="such products are still sold and found by their own kind of article, but never shown in a look "
                 "row that needs the missing fact (a product of unknown gender never appears in a men's or "
                 "women's look)",
            id="recommender.W020",
        ))
    if failed:
        messages.append(Warning(
            f"the adapter raised for {len(failed)} of {len(products)} products checked: " + "; ".join(failed[:5]),
            hint="they are never recommended until the adapter can describe them", id="recommender.W021"))
    mismatch = adapter_table_mismatch()
    if mismatch:
        messages.append(Error(mismatch, id="recommender.E021"))
    messages += check_vector_indexes()
    return messages


def check_vector_indexes(using="default"):
    """The HNSW indexes the look query searches (float, or halfvec with ``HALFVEC``) exist: without them every
    look is an exact scan of the whole inventory (complete, but slow on a large catalogue)."""
    from django.db import connections

    from .management.commands.halfvec_indexes import float_indexes, halfvec_name
    from .models import DetectedArticle

    try:
        with connections[using].cursor() as cursor:
            cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [DetectedArticle._meta.db_table])
            present = {row[0] for row in cursor.fetchall()}
    except Exception:  # no tables yet
        return []
    if not present:
        return []
    wanted = [halfvec_name(index) if settings.HALFVEC else index.name for index in float_indexes()]
    missing = [name for name in wanted if name not in present]
    if not missing:
        return []
    if settings.HALFVEC:
        hint = "run `manage.py halfvec_indexes`, or turn BUY_THE_LOOK['HALFVEC'] off"
    else:
        hint = "run `manage.py halfvec_indexes --restore` (the float indexes were dropped for HALFVEC)"
    return [Warning(f"the look query's HNSW indexes {', '.join(missing)} do not exist: looks fall back to exact "
                    f"scans of the whole inventory", hint=hint, id="recommender.W022")]
