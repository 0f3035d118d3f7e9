"""The analysis task's state machine, its failure path and how uploads reach it (signals, broker down)."""
import logging

import pytest
from celery import current_app
from django.core.management import CommandError, call_command

from catalog.models import ProductImage
from look_factories import NOT_AN_IMAGE, make_image, make_product, use_broker
from recommender.models import ImageAnalysis
from recommender.hooks import BROKER_DOWN_MESSAGE, defer_analysis
from recommender.tasks import analyse_image




@pytest.mark.django_db
def test_a_file_that_is_not_an_image_ends_failed_with_a_readable_message():
    product = make_product(category="top")
    image = make_image(product, content=NOT_AN_IMAGE)
    outcome = analyse_image.delay(image.pk).get()
    analysis = ImageAnalysis.objects.get(image=image)
    assert outcome["status"] == "failed" and analysis.status == "failed"
    assert "not an image" in analysis.error and "cannot identify format" in analysis.error
    assert analysis.attempts == 1 and analysis.started_at and analysis.finished_at
    assert analysis.articles.count() == 0
    # Re-running is allowed and counted; the outcome is the same.
    analyse_image.delay(image.pk).get()
    analysis.refresh_from_db()
    assert analysis.status == "failed" and analysis.attempts == 2


@pytest.mark.django_db
def test_a_truncated_jpeg_and_a_missing_file_are_named():
    from look_factories import png_bytes
    from PIL import Image
    import io

    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), png_bytes()[:64 * 64 * 3].ljust(64 * 64 * 3, b"x")).save(buffer, "JPEG")
    truncated = make_image(make_product(category="top"), content=buffer.getvalue()[:300])
    analyse_image.delay(truncated.pk).get()
    assert "truncated" in ImageAnalysis.objects.get(image=truncated).error.lower()

    missing = make_image(make_product(category="top"))
    missing.file.storage.delete(missing.file.name)
    analyse_image.delay(missing.pk).get()
    assert "missing from storage" in ImageAnalysis.objects.get(image=missing).error


@pytest.mark.django_db
def test_an_image_deleted_before_its_task_ran_is_not_an_error():
    image = make_image(make_product(category="top"))
    image_id = image.pk
    image.delete()
    assert analyse_image.delay(image_id).get() == {"image": image_id, "status": "missing"}
    assert not ImageAnalysis.objects.filter(image_id=image_id).exists()


@pytest.mark.django_db(transaction=True)
def test_saving_an_image_queues_its_analysis_after_commit():
    """Eager mode (no broker): the catalog signal runs the task right after the commit."""
    assert current_app.conf.task_always_eager
    product = make_product(category="top")
    image = make_image(product, content=NOT_AN_IMAGE)  # fails fast, without loading any model
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "failed" and "not an image" in analysis.error


@pytest.mark.django_db(transaction=True)
def test_bulk_imports_only_mark_images_queued():
    product = make_product(category="top")
    with defer_analysis():
        image = make_image(product, content=NOT_AN_IMAGE)
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "queued" and analysis.attempts == 0
    call_command("analyse", "--pending", "--no-progress")
    analysis.refresh_from_db()
    assert analysis.status == "failed" and analysis.attempts == 1


@pytest.fixture
def broker_down():
    saved = use_broker(False, "redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        yield
    finally:
        use_broker(*saved)


@pytest.mark.django_db(transaction=True)
def test_broker_down_the_image_is_saved_and_stays_queued(broker_down, caplog):
    product = make_product(category="top")
    with caplog.at_level(logging.WARNING, logger="recommender"):
        image = make_image(product, content=NOT_AN_IMAGE)
    assert ProductImage.objects.filter(pk=image.pk).exists()
    assert ImageAnalysis.objects.get(image=image).status == "queued"
    warning = [r for r in caplog.records if r.msg == BROKER_DOWN_MESSAGE]
    assert warning and "manage.py analyse --pending" in warning[0].getMessage()
    assert "Connection refused" in warning[0].getMessage() or "Error 111" in warning[0].getMessage()


@pytest.mark.django_db
def test_analyse_command_reports_and_refuses_unknown_products(capsys):
    shirt = make_product(category="top", sku="SHIRT-1")
    image = make_image(shirt, content=NOT_AN_IMAGE)
    with pytest.raises(CommandError, match="takes product primary keys"):
        call_command("analyse", "--product", "NOPE")
    with pytest.raises(CommandError, match="no product with primary key 999999"):
        call_command("analyse", "--product", "999999")
    call_command("analyse", "--product", str(shirt.pk), "--no-progress")
    out = capsys.readouterr().out
    assert f"Analysing 1 images of product(s) {shirt.pk}" in out and "1 failed" in out and f"image {image.pk}: " in out
    call_command("analyse", "--pending", "--no-progress")
    assert "Nothing to analyse" in capsys.readouterr().out
    call_command("analyse", "--failed", "--no-progress")
    assert "1 failed" in capsys.readouterr().out


@pytest.mark.django_db(transaction=True)
def test_catalogue_import_in_eager_mode_only_queues_then_analyse_pending_takes_over(settings):
    """`make demo`: import_catalogue lets the signals fire; analyses wait for `manage.py analyse --pending`."""
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "demo_data" / "products"
    call_command("import_catalogue", "--styles", str(demo / "styles.csv"), "--images", str(demo / "images"),
                 "--limit", "5")
    images = ProductImage.objects.all()
    assert images.count() == 5
    statuses = list(ImageAnalysis.objects.filter(image__in=images).values_list("status", flat=True))
    assert statuses == ["queued"] * 5  # nothing ran inside the import
    assert ImageAnalysis.objects.filter(attempts__gt=0).count() == 0


@pytest.mark.django_db
def test_pending_includes_analyses_abandoned_while_running(capsys):
    from datetime import timedelta

    from django.utils import timezone

    abandoned = make_image(make_product(category="top"), content=NOT_AN_IMAGE)
    fresh = make_image(make_product(category="top"), content=NOT_AN_IMAGE)
    ImageAnalysis.objects.create(image=abandoned, status="running", started_at=timezone.now() - timedelta(hours=1))
    ImageAnalysis.objects.create(image=fresh, status="running", started_at=timezone.now())
    call_command("analyse", "--pending", "--no-progress")
    assert ImageAnalysis.objects.get(image=abandoned).status == "failed"  # picked up (and fails: not an image)
    assert ImageAnalysis.objects.get(image=fresh).status == "running"  # another process may be on it


def test_task_is_acknowledged_late_and_retries_transient_errors():
    from django.db import InterfaceError, OperationalError

    assert analyse_image.acks_late is True and analyse_image.reject_on_worker_lost is True
    assert {OperationalError, InterfaceError, ConnectionError} <= set(analyse_image.autoretry_for)
    assert analyse_image.retry_backoff and analyse_image.max_retries == 5


@pytest.mark.django_db
def test_retries_exhausted_leave_a_failed_analysis_not_a_running_one():
    from django.db import OperationalError

    image = make_image(make_product(category="top"))
    ImageAnalysis.objects.create(image=image, status="running", attempts=6)
    analyse_image.on_failure(OperationalError("server closed the connection unexpectedly"), "task-id",
                             (image.pk,), {}, None)
    analysis = ImageAnalysis.objects.get(image=image)
    assert analysis.status == "failed"
    assert "gave up after" in analysis.error and "server closed the connection" in analysis.error
