"""Building an Oscar catalogue for the tests the way a shop does: product classes with gender and colour
attributes, a category tree, a partner with stock records, and product images (the repository's photos)."""
from decimal import Decimal
from pathlib import Path

from django.core.files.base import ContentFile
from django.db import transaction
from oscar.core.loading import get_model

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
ARTIFACTS = ROOT / "test-artifacts"
MEN_LOOK = FIXTURES / "street_full_body.jpg"
WOMEN_LOOK = FIXTURES / "street_full_body_woman.jpg"
TSHIRT = FIXTURES / "catalogue_men_tshirt.jpg"
SHOE = FIXTURES / "catalogue_shoe.jpg"
DRESS = FIXTURES / "catalogue_women_dress.jpg"
NOT_AN_IMAGE = b"Dear shop, this is a text file renamed photo.jpg\n" * 20

Product = get_model("catalogue", "Product")
ProductClass = get_model("catalogue", "ProductClass")
ProductAttribute = get_model("catalogue", "ProductAttribute")
AttributeOptionGroup = get_model("catalogue", "AttributeOptionGroup")
AttributeOption = get_model("catalogue", "AttributeOption")
ProductImage = get_model("catalogue", "ProductImage")
Category = get_model("catalogue", "Category")
Partner = get_model("partner", "Partner")
StockRecord = get_model("partner", "StockRecord")


def missing_weights():
    from ml import detect, embed, gender

    return [path.name for path in (detect.DEFAULT_WEIGHTS, embed.DEFAULT_WEIGHTS, gender.DEFAULT_WEIGHTS)
            if not path.exists()]


class Catalogue:
    """An Oscar catalogue under construction: classes (each with a ``gender`` option attribute and a
    ``colour`` text attribute), categories by path ("Clothing > Tops"), one partner."""

    def __init__(self):
        self.genders, _ = AttributeOptionGroup.objects.get_or_create(name="Gender")
        for name in ("Men", "Women", "Unisex"):
            AttributeOption.objects.get_or_create(group=self.genders, option=name)
        self.partner, _ = Partner.objects.get_or_create(name="Test partner")
        self.classes = {}
        self.categories = {}
        self.counter = 0

    def product_class(self, name, track_stock=True):
        if name not in self.classes:
            product_class, _ = ProductClass.objects.get_or_create(
                name=name, defaults={"track_stock": track_stock, "requires_shipping": True})
            ProductAttribute.objects.get_or_create(
                product_class=product_class, code="gender",
                defaults={"name": "Gender", "type": ProductAttribute.OPTION, "option_group": self.genders})
            ProductAttribute.objects.get_or_create(
                product_class=product_class, code="colour", defaults={"name": "Colour", "type": ProductAttribute.TEXT})
            self.classes[name] = product_class
        return self.classes[name]

    def category(self, path):
        """``"Clothing > Tops"``: the category, its ancestors created as needed."""
        if path in self.categories:
            return self.categories[path]
        names = [name.strip() for name in path.split(">")]
        parent = self.category(" > ".join(names[:-1])) if len(names) > 1 else None
        existing = (parent.get_children() if parent else Category.get_root_nodes()).filter(name=names[-1]).first()
        node = existing or (parent.add_child(name=names[-1]) if parent else Category.add_root(name=names[-1]))
        self.categories[path] = node
        return node

    def product(self, title, product_class, *, gender=None, colour=None, price="20.00", stock=10,
                categories=(), photo=None, photo_bytes=None, structure="standalone", parent=None, upc=None):
        """A product as a shop creates it in one go (one transaction: the receivers act after the commit)."""
        self.counter += 1
        with transaction.atomic():
            product = Product(
                title=title, structure=structure, parent=parent, upc=upc or f"UPC{self.counter:05d}",
                product_class=None if structure == "child" else self.product_class(product_class),
            )
            if gender is not None:
                product.attr.gender = AttributeOption.objects.get(group=self.genders, option=gender)
            if colour is not None:
                product.attr.colour = colour
            product.save()
            for path in categories:
                product.categories.add(self.category(path))
            if price is not None and structure != "parent":
                StockRecord.objects.create(product=product, partner=self.partner, partner_sku=f"SKU{self.counter:05d}",
                                           price_currency="EUR", price=Decimal(price), num_in_stock=stock)
            if photo is not None or photo_bytes is not None:
                add_image(product, photo_bytes if photo_bytes is not None else Path(photo).read_bytes(),
                          name=(Path(photo).name if photo is not None else "photo.jpg"))
        return product


def add_image(product, data, name="photo.jpg", display_order=None):
    image = ProductImage(product=product, caption=product.get_title(),
                         display_order=product.images.count() if display_order is None else display_order)
    image.original.save(name, ContentFile(data), save=False)
    image.save()
    return image


def build_shop():
    """The test shop's catalogue: two full-shot looks (men's, women's) and the products they should find —
    and the products they must never show (the other gender, no gender, no look category)."""
    shop = Catalogue()
    with transaction.atomic():  # one transaction, like an import: the receivers act once, after the commit
        items = {
            "men_look": shop.product("Men's street look", "Looks", gender="Men", categories=["Looks"],
                                     price="120.00", photo=MEN_LOOK),
            "women_look": shop.product("Women's street look", "Looks", gender="Women", categories=["Looks"],
                                       price="140.00", photo=WOMEN_LOOK),
            "men_tee": shop.product("Men's sports tee", "T-shirts", gender="Men", colour="Black",
                                    categories=["Clothing > Tops"], price="19.99", photo=TSHIRT),
            "women_tee": shop.product("Women's sports tee", "T-shirts", gender="Women", colour="Black",
                                      categories=["Clothing > Tops"], price="24.00", photo=TSHIRT),
            "men_shoe": shop.product("Men's leather shoe", "Shoes", gender="Men", colour="Brown",
                                     categories=["Footwear"], price="59.00", photo=SHOE),
            # class "Sandals & co" is not mapped: its look category comes from the category "Footwear"
            "women_shoe": shop.product("Women's shoe", "Sandals & co", gender="Women", colour="Brown",
                                       categories=["Footwear > Women"], price="49.00", photo=SHOE),
            "dress": shop.product("Summer dress", "Dresses", gender="Women", colour="Blue",
                                  categories=["Clothing > Dresses"], price="79.00", photo=DRESS),
            # the shop forgot the gender: sold, but never in a gendered look row
            "no_gender_tee": shop.product("Tee without gender", "T-shirts", colour="Black", price="9.00",
                                          photo=TSHIRT),
            # a class and category the look mapping does not know: never a look recommendation
            "mystery": shop.product("Mystery item", "Gadgets", gender="Men", categories=["Misc"], price="5.00",
                                    photo=TSHIRT),
        }
    return shop, items


def use_broker(eager, broker_url):
    """Point this process's Celery app at another broker (or back to eager); returns the previous state."""
    import kombu.pools
    from celery import current_app as app

    conf = app.conf
    previous = (conf.task_always_eager, conf.broker_url)
    conf.task_always_eager, conf.broker_url = eager, broker_url
    kombu.pools.reset()
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    return previous
