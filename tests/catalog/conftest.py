"""Fixtures of the catalogue tests: a private MEDIA_ROOT, image bytes, styles.csv files and products."""
import pytest

from catalog_helpers import STYLES_HEADER, image_bytes


@pytest.fixture(autouse=True)
def _catalog_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def styles_dir(tmp_path):
    """``write(lines, images={id: bytes})`` writes styles.csv (header added) + images; returns (csv, images dir)."""
    folder = tmp_path / "styles"
    images = folder / "images"
    images.mkdir(parents=True)

    def write(lines, images_by_id=None, header=STYLES_HEADER):
        content = b"\n".join(line if isinstance(line, bytes) else line.encode("utf-8") for line in [header, *lines])
        (folder / "styles.csv").write_bytes(content + b"\n")
        for sku, data in (images_by_id or {}).items():
            (images / f"{sku}.jpg").write_bytes(data)
        return folder / "styles.csv", images

    return write


@pytest.fixture
def make_product(db):
    from catalog.models import Product

    counter = iter(range(1, 10_000))

    def make(**fields):
        number = next(counter)
        values = {"sku": f"T{number:04d}", "name": f"Test product {number}", "gender": "Women",
                  "sub_category": "Topwear", "article_type": "Tops", "base_colour": "Black", "price": "20.00"}
        values.update(fields)
        return Product.objects.create(**values)

    return make


@pytest.fixture
def add_image(db):
    from django.core.files.base import ContentFile

    from catalog.models import ProductImage

    shades = iter(range(10_000))

    def add(product, data=None, name="photo.jpg", **fields):
        fields.setdefault("is_primary", not product.images.exists())
        image = ProductImage(product=product, **fields)
        shade = next(shades)
        image.file = ContentFile(data or image_bytes(colour=(shade % 256, shade // 256, 120)), name=name)
        image.save()
        return image

    return add
