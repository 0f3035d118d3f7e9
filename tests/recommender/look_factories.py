"""Factories for recommender tests: real products, images and articles with chosen embeddings."""
import io
import itertools
from decimal import Decimal

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image, ImageDraw

from catalog.models import Product, ProductImage
from recommender.taxonomy import look_category_for
from recommender.conf import EMBEDDING_DIM
from recommender.models import DetectedArticle, ImageAnalysis

SUB_CATEGORY = {"top": "Topwear", "bottom": "Bottomwear", "dress": "Dress", "footwear": "Shoes", "bag": "Bags", "": "Watches"}
_counter = itertools.count(1)
NOT_AN_IMAGE = b"Dear shop, this is a text file renamed photo.jpg\n" * 20


def unit(vector):
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def random_unit(rng):
    return unit(rng.standard_normal(EMBEDDING_DIM))


def near(vector, rng, noise=0.05):
    """A unit vector at about ``noise`` (relative) from ``vector``."""
    return unit(np.asarray(vector) + noise * rng.standard_normal(EMBEDDING_DIM) / np.sqrt(EMBEDDING_DIM))


def png_bytes(width=120, height=240, colour=(200, 30, 30), seed=0):
    image = Image.new("RGB", (width, height), colour)
    draw = ImageDraw.Draw(image)
    draw.rectangle([width // 4, height // 4, width // 2, height // 2 + seed % 10], fill=(seed % 255, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def make_product(category="top", gender="Men", colour="Blue", price="20.00", active=True, outfit=False, sku=None):
    number = next(_counter)
    return Product.objects.create(
        sku=sku or f"T{number}",
        name=f"{'Look' if outfit else category.title() or 'Watch'} {number}",
        gender=gender,
        master_category="Outfit" if outfit else "Apparel",
        sub_category="" if outfit else SUB_CATEGORY[category],
        base_colour=colour,
        price=Decimal(price),
        is_active=active,
    )


def make_image(product, content=None, **kwargs):
    image = ProductImage(product=product, is_primary=kwargs.pop("is_primary", True), **kwargs)
    image.file = ContentFile(content or png_bytes(seed=product.pk), name=f"{product.sku}.png")
    image.save()  # an uncommitted file: catalog computes its sha256 and announces it
    return image


def make_analysis(image, *, full_shot=False, gender=None, status="done"):
    return ImageAnalysis.objects.update_or_create(
        image=image,
        defaults=dict(product=image.product, sha256=image.sha256, status=status, is_full_shot=full_shot, gender=gender or image.product.gender,
                      gender_source="product", width=image.width, height=image.height,
                      timings={"pose": 10.0, "detect": 40.0, "embed": 20.0, "total": 70.0},
                      model_versions={"embedder": "test"}),
    )[0]


def add_article(analysis, category, embedding, *, inventory=False, box=(0.2, 0.1, 0.8, 0.5), confidence=0.9, gender=None):
    product = analysis.image.product
    return DetectedArticle.objects.create(
        analysis=analysis, product=product, category=category,
        x1=box[0], y1=box[1], x2=box[2], y2=box[3], confidence=confidence,
        gender=gender if gender is not None else (product.gender or analysis.gender),
        base_colour=product.base_colour.lower(), price=product.price, is_active=product.is_active,
        is_inventory=inventory, is_whole_image=False, embedding=np.asarray(embedding, dtype=np.float32),
        model_version="test",
    )


def at_cosine(query, cosine, rng):
    """A unit vector whose cosine similarity with ``query`` is exactly ``cosine``."""
    other = rng.standard_normal(query.shape[0]).astype(np.float32)
    other -= (other @ query) * query
    other /= np.linalg.norm(other)
    return (cosine * query + np.sqrt(1 - cosine ** 2) * other).astype(np.float32)


def bulk_inventory(specs):
    """Many inventory products fast: ``specs`` is a list of dicts (category, gender, colour, price, embedding,
    active, model_version, colour_vector, colour_name, kind_vector). Returns the products, in order. Images are rows only (no files): the query never reads them."""
    products = []
    for spec in specs:
        number = next(_counter)
        category = spec.get("category", "top")
        products.append(Product(
            sku=f"B{number}", name=f"Bulk {category} {number}", slug=f"bulk-{number}",
            gender=spec.get("gender", "Men"), master_category="Apparel", sub_category=SUB_CATEGORY[category],
            base_colour=spec.get("colour", "Blue"), price=Decimal(str(spec.get("price", "20.00"))),
            is_active=spec.get("active", True), look_category=look_category_for(SUB_CATEGORY[category], ""),
        ))
    products = Product.objects.bulk_create(products)
    images = ProductImage.objects.bulk_create([
        ProductImage(product=product, file=f"products/{product.sku}.png", is_primary=True, width=224, height=224,
                     sha256=f"{product.pk:064x}")
        for product in products
    ])
    analyses = ImageAnalysis.objects.bulk_create([
        ImageAnalysis(image=image, product=image.product, status="done", is_full_shot=False, gender=image.product.gender,
                      gender_source="product", model_versions={"embedder": "test"})
        for image in images
    ])
    DetectedArticle.objects.bulk_create([
        DetectedArticle(
            analysis=analysis, product=product, category=product.look_category, x1=0, y1=0, x2=1, y2=1,
            confidence=1.0, gender=product.gender, base_colour=product.base_colour.lower(), price=product.price,
            is_active=product.is_active, is_inventory=True, is_whole_image=True,
            embedding=np.asarray(spec["embedding"], dtype=np.float32),
            model_version=spec.get("model_version", "test"),
            colour=spec.get("colour_vector"), colour_name=spec.get("colour_name", ""), kind=spec.get("kind_vector"),
        )
        for analysis, product, spec in zip(analyses, products, specs)
    ])
    return products




def demo_look_photo():
    """A full-body street photo of the committed demo data."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "demo_data" / "looks"
    photos = sorted(folder.glob("*.jpg"))
    if not photos:
        raise FileNotFoundError(f"no demo look photos in {folder}")
    return photos[0]


def use_broker(eager, broker_url):
    """Point this process's Celery app at another broker (or back to eager); returns the previous state."""
    from celery import current_app as app

    conf = app.conf
    previous = (conf.task_always_eager, conf.broker_url)
    conf.task_always_eager, conf.broker_url = eager, broker_url
    import kombu.pools

    kombu.pools.reset()  # closes and forgets kombu's global connection and producer pools
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    return previous


def worker_env(broker, media_root):
    """Environment of a real ``celery -A shop worker`` subprocess reading this test's database and media."""
    import os

    from django.db import connection

    db = connection.settings_dict
    return {
        **os.environ,
        "CELERY_BROKER_URL": broker,
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "MEDIA_ROOT": str(media_root),
        "DB_CONN_MAX_AGE": "0",
        "PYTHONUNBUFFERED": "1",
    }
