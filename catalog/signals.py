"""Signals ``catalog`` sends so that other apps (the recommender) can react.

- ``product_image_changed(sender=ProductImage, image=..., created=bool)``: a product image was
  created or its file replaced; sent after the transaction commits.
- ``product_image_deleted(sender=ProductImage, image=...)``: a product image was deleted; after commit.
- ``product_changed(sender=Product, product=...)``: a product was saved or deleted.

The demo shop's product adapter (``catalog.adapter.CatalogAdapter.connect``) turns them into calls of
``recommender.hooks``. Every saved or deleted product or image also bumps the version of the shop's cached page
fragments (``catalog.fragments``) once its transaction commits.
"""
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import Signal, receiver

from . import fragments

product_image_changed = Signal()
product_changed = Signal()
product_image_deleted = Signal()


@receiver(post_save, sender="catalog.ProductImage")
def _announce_image(sender, instance, created, **kwargs):
    if kwargs.get("raw"):
        return
    if created or getattr(instance, "_file_changed", False):
        instance._file_changed = False
        transaction.on_commit(
            lambda: product_image_changed.send(sender=sender, image=instance, created=created)
        )


@receiver(post_save, sender="catalog.Product")
@receiver(post_delete, sender="catalog.Product")
def _announce_product(sender, instance, **kwargs):
    if kwargs.get("raw"):
        return
    transaction.on_commit(lambda: product_changed.send(sender=sender, product=instance))


@receiver(post_delete, sender="catalog.ProductImage")
def _delete_image_file(sender, instance, **kwargs):
    """A deleted image takes its stored file with it (once the deletion is committed)."""
    name = instance.file.name if instance.file else ""
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: storage.delete(name))
    transaction.on_commit(lambda: product_image_deleted.send(sender=sender, image=instance))


@receiver(post_save, sender="catalog.Product")
@receiver(post_delete, sender="catalog.Product")
@receiver(post_save, sender="catalog.ProductImage")
@receiver(post_delete, sender="catalog.ProductImage")
def _outdate_fragments(sender, instance, **kwargs):
    if not kwargs.get("raw"):
        transaction.on_commit(fragments.bump)
