"""Catalogue import: styles.csv rows and their photos become ``Product`` + ``ProductImage`` rows.

Used by ``manage.py import_catalogue`` and ``manage.py import_looks``. Rows are committed in batches of
``BATCH_SIZE``, every row in a savepoint of its own (a failing row is rolled back alone, and its stored file
deleted: nothing half-written is left behind), products are upserted
by SKU and only written when a field changed, and an image is attached only when the product has no image
with the same SHA-256 — so a second run of the same import writes nothing at all.
"""
import csv
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import transaction
from django.utils.text import slugify

from recommender.hooks import defer_analysis

from .models import OUTFIT_CATEGORY, Gender, Product, ProductImage
from .pricing import suggested_price
from .validation import EXTENSION_FOR_FORMAT, validate_image_upload

STYLES_COLUMNS = ("id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season",
                  "year", "usage", "productDisplayName")
CATALOGUE_GENDERS = {choice.value for choice in Gender if choice.value}
LOOK_PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
LOOK_DESCRIPTION = "A full-body street photo: each article it shows is matched with products from the shop."
MIN_YEAR, MAX_YEAR = 1900, 2100
BATCH_SIZE = 100  # rows per database transaction (each row is a savepoint of its own)
# Fields an import owns; anything else (description edited in the admin, is_active...) is left alone.
IMPORTED_FIELDS = ("name", "gender", "master_category", "sub_category", "article_type", "base_colour",
                   "season", "usage", "year", "price")


class BadRow(Exception):
    """A styles.csv row that cannot be imported; the message says why."""


@dataclass
class ImportSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    images_attached: int = 0
    images_unchanged: int = 0
    problems: list = field(default_factory=list)  # (line or name, message)

    def report(self, where, message):
        self.problems.append((where, message))

    def lines(self):
        yield (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
               f"{self.skipped} skipped; {self.images_attached} images attached, "
               f"{self.images_unchanged} already attached; {len(self.problems)} errors")


# -- reading styles.csv ---------------------------------------------------------------------------------

def read_styles(path, summary):
    """Yield ``(line_number, row dict)`` for each record of a styles.csv file.

    Each line is decoded and parsed on its own (a record must fit on one line), so that one bad line is
    reported and skipped instead of failing or swallowing the rest of the file: bytes that are not UTF-8, an
    unclosed quote (which a file-wide CSV reader would run on into the following rows), a field over the CSV
    size limit. Rows with the wrong number of columns are yielded with ``row=None`` and a reason, so the caller
    counts them as skipped.
    """

    def decoded_lines(handle):
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                summary.skipped += 1
                summary.report(f"line {number}", f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at column "
                                                 f"{error.start + 1}); line skipped")
                continue
            yield number, text

    with open(path, "rb") as handle:
        header = None
        for line, text in decoded_lines(handle):
            if not text.strip():
                continue
            try:
                values = next(csv.reader([text], strict=True), [])
            except csv.Error as error:
                summary.skipped += 1
                summary.report(f"line {line}", f"unreadable CSV ({error}); line skipped")
                continue
            if not values or not any(value.strip() for value in values):
                continue
            if header is None:
                header = [value.strip() for value in values]
                missing = [name for name in STYLES_COLUMNS if name not in header]
                if missing:
                    raise BadRow(f"{path}: header lacks the columns {', '.join(missing)} "
                                 f"(found: {', '.join(header)})")
                continue
            if len(values) != len(header):
                yield line, None, f"expected {len(header)} columns, found {len(values)}"
                continue
            yield line, dict(zip(header, (value.strip() for value in values))), None
    if header is None:
        raise BadRow(f"{path}: the file is empty (no header line)")


def product_fields_from_row(row):
    """The Product field values of a styles.csv row, or ``BadRow`` naming the first problem."""
    sku = row["id"]
    if not sku:
        raise BadRow("empty id")
    if len(sku) > 64:
        raise BadRow(f"id {sku[:20]}… longer than 64 characters")
    name = row["productDisplayName"]
    if not name:
        raise BadRow(f"id {sku}: empty productDisplayName")
    gender = row["gender"]
    if gender not in CATALOGUE_GENDERS:
        raise BadRow(f"id {sku}: unknown gender {gender!r} (expected one of {', '.join(sorted(CATALOGUE_GENDERS))})")
    year = row["year"]
    if year:
        if not re.fullmatch(r"\d{4}", year) or not MIN_YEAR <= int(year) <= MAX_YEAR:
            raise BadRow(f"id {sku}: bad year {year!r}")
        year = int(year)
    else:
        year = None
    usage = row["usage"] if row["usage"] not in {"NA", "N/A"} else ""
    return sku, {
        "name": name[:255],
        "gender": gender,
        "master_category": row["masterCategory"][:64],
        "sub_category": row["subCategory"][:64],
        "article_type": row["articleType"][:64],
        "base_colour": row["baseColour"][:32],
        "season": row["season"][:16],
        "usage": usage[:32],
        "year": year,
        "price": suggested_price(row["articleType"], sku),
    }


# -- writing ---------------------------------------------------------------------------------------------

def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ProductWriter:
    """Upserts products by SKU and attaches primary images, counting everything in an ``ImportSummary``."""

    def __init__(self, summary):
        self.summary = summary
        products = Product.objects.only("pk", "sku", "slug", "is_active", *IMPORTED_FIELDS)
        self.products = {product.sku: product for product in products}
        self.image_hashes = {}
        for product_id, sha256 in ProductImage.objects.values_list("product_id", "sha256"):
            self.image_hashes.setdefault(product_id, set()).add(sha256)

    def upsert(self, sku, values, image_path, where, on_create=None):
        """Write one product (and its image) in one transaction; returns "created"/"updated"/"unchanged".

        ``values`` are compared with the stored product and written only when they differ; ``on_create``
        holds extra field values used only when the product is new (e.g. a description).
        """
        product = self.products.get(sku)
        image_problem, image_sha256, image_format = None, None, None
        if image_path is not None:
            if not image_path.is_file():
                image_problem = f"image missing: {image_path}"
            else:
                image_sha256 = file_sha256(image_path)
        needs_image = image_sha256 is not None and (
            product is None or image_sha256 not in self.image_hashes.get(product.pk, ())
        )
        if needs_image:
            try:
                with open(image_path, "rb") as handle:
                    _, _, image_format = validate_image_upload(handle)
            except ValidationError as error:
                image_problem = f"broken image {image_path}: {' '.join(error.messages)} (product kept without it)"
                needs_image = False

        try:
            with transaction.atomic():
                if product is None:
                    product = Product(sku=sku, **values, **(on_create or {}))
                    product.slug = slugify(values["name"])[:200] or slugify(sku) or "product"
                    product.save()
                    outcome = "created"
                else:
                    changed = [name for name, value in values.items() if getattr(product, name) != value]
                    if changed:
                        for name in changed:
                            setattr(product, name, values[name])
                        if "name" in changed:
                            product.slug = slugify(product.name)[:200] or slugify(sku) or "product"
                            changed.append("slug")
                        product.save(update_fields=changed + ["updated_at"])
                        outcome = "updated"
                    else:
                        outcome = "unchanged"
                if needs_image:
                    self._attach_primary(product, image_path, image_format, image_sha256)
        except Exception:
            # The transaction rolled back: forget what this row changed in memory.
            self.products.pop(sku, None)
            stored = Product.objects.filter(sku=sku).only("pk", "sku", "slug", "is_active", *IMPORTED_FIELDS).first()
            if stored is not None:
                self.products[sku] = stored
            raise
        self.products[sku] = product
        if needs_image:
            self.image_hashes.setdefault(product.pk, set()).add(image_sha256)
            self.summary.images_attached += 1
        elif image_sha256 is not None and image_problem is None:
            self.summary.images_unchanged += 1
        if image_problem:
            self.summary.report(where, image_problem)
        setattr(self.summary, outcome, getattr(self.summary, outcome) + 1)
        return outcome

    def _attach_primary(self, product, image_path, image_format, image_sha256):
        """Store the file as the product's primary image (an earlier primary image stays, demoted)."""
        if self.image_hashes.get(product.pk):
            product.images.filter(is_primary=True).update(is_primary=False)
        extension = EXTENSION_FOR_FORMAT.get(image_format, image_path.suffix.lower())
        image = ProductImage(product=product, position=0, is_primary=True)
        with open(image_path, "rb") as handle:
            image.file = File(handle, name=f"{image_path.stem}{extension}")
            try:
                image.save()  # stores the file, computes its sha256; the signal fires on commit
            except Exception:
                if image.file.name and getattr(image.file, "_committed", False):
                    image.file.storage.delete(image.file.name)
                raise


@defer_analysis()
def import_catalogue(styles_path, images_dir, limit=None, progress=None):
    """Import a styles.csv (+ ``<id>.jpg`` photos); returns an ``ImportSummary``.

    A bulk import: new images are only marked "queued" when no worker runs (``manage.py analyse --pending``)."""
    summary = ImportSummary()
    writer = ProductWriter(summary)
    images_dir = Path(images_dir) if images_dir else None
    seen = {}
    rows = read_styles(styles_path, summary)
    if limit is not None:
        rows = itertools.islice(rows, limit)
    for batch in batched(rows, BATCH_SIZE):
        with transaction.atomic():  # one commit per batch; each row is a savepoint inside it
            for line, row, problem in batch:
                if progress:
                    progress.update(1)
                where = f"line {line}"
                if problem:
                    summary.skipped += 1
                    summary.report(where, problem)
                    continue
                try:
                    sku, values = product_fields_from_row(row)
                    if sku in seen:
                        raise BadRow(f"id {sku}: duplicate id (first seen on line {seen[sku]})")
                except BadRow as error:
                    summary.skipped += 1
                    summary.report(where, str(error))
                    continue
                seen[sku] = line
                image_path = images_dir / f"{sku}.jpg" if images_dir else None
                try:
                    writer.upsert(sku, values, image_path, where)
                except Exception as error:  # a database or storage failure: this row only
                    summary.skipped += 1
                    summary.report(where, f"id {sku}: not imported ({type(error).__name__}: {error})")
    return summary


def batched(iterable, size):
    iterator = iter(iterable)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def look_photos(photos_dir):
    return sorted(path for path in Path(photos_dir).iterdir()
                  if path.is_file() and path.suffix.lower() in LOOK_PHOTO_SUFFIXES)


def look_values(stem):
    return {
        "name": f"Street look {stem}",
        "gender": "",
        "master_category": OUTFIT_CATEGORY,
        "sub_category": "",
        "article_type": "",
        "base_colour": "",
        "season": "",
        "usage": "",
        "year": None,
        "price": Decimal("0.00"),  # a look photo is not for sale; its articles are
    }


@defer_analysis()
def import_looks(photos_dir, limit=None, progress=None):
    """Import full-body photos as "Outfit" products (SKU ``look-<stem>``, no gender, not for sale)."""
    summary = ImportSummary()
    writer = ProductWriter(summary)
    photos = look_photos(photos_dir)[:limit]
    for batch in batched(photos, BATCH_SIZE):
        with transaction.atomic():
            for path in batch:
                if progress:
                    progress.update(1)
                sku = f"look-{slugify(path.stem)[:59] or 'photo'}"
                try:
                    writer.upsert(sku, look_values(path.stem), path, path.name,
                                  on_create={"description": LOOK_DESCRIPTION})
                except Exception as error:
                    summary.skipped += 1
                    summary.report(path.name, f"not imported ({type(error).__name__}: {error})")
    return summary
