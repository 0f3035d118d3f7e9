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


# --------------------------------------------------------------------------------------------------
# Bulk work: one task per batch of images (``manage.py analyse --queue``, ``reindex --queue``)


@pytest.mark.django_db
def test_a_batch_task_stores_each_image_and_fails_only_the_broken_one():
    from recommender.tasks import analyse_images

    good = make_image(make_product(category="top", colour="Red"))
    broken = make_image(make_product(category="bag"), content=NOT_AN_IMAGE)
    gone = make_image(make_product(category="top"))
    gone_id = gone.pk
    gone.delete()
    outcome = analyse_images.delay([good.pk, broken.pk, gone_id]).get()
    assert outcome == {"done": 1, "failed": 1, "missing": 1}
    stored = ImageAnalysis.objects.get(image=good)
    assert stored.status == "done" and stored.attempts == 1 and stored.finished_at and stored.sha256
    assert stored.model_versions.get("embedder") and stored.timings.get("embed") is not None
    article = stored.articles.get()
    assert article.is_inventory and article.category == "top" and article.base_colour == "red"
    failed = ImageAnalysis.objects.get(image=broken)
    assert failed.status == "failed" and "not an image" in failed.error and failed.articles.count() == 0
    # Run again: the articles are replaced, not added.
    assert analyse_images.delay([good.pk]).get() == {"done": 1}
    stored.refresh_from_db()
    assert stored.attempts == 2 and stored.articles.count() == 1


@pytest.mark.django_db
def test_a_batch_costs_the_same_statements_whatever_its_size():
    """Reading, marking running and storing a batch are a fixed number of statements, not a few per image."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from recommender.analysis import analyse_many

    def statements(count):
        ids = [make_image(make_product(category="footwear", sku=f"B{count}-{i}")).pk for i in range(count)]
        with CaptureQueriesContext(connection) as queries:
            done = analyse_many(ids, batch_size=count)
        assert [analysis.status for analysis in done] == ["done"] * count
        assert all(analysis.articles.count() == 1 for analysis in done)
        return len(queries.captured_queries)

    assert statements(12) == statements(3)


@pytest.mark.django_db
def test_a_redelivered_batch_leaves_finished_images_alone_and_runs_the_others_one_by_one():
    """The worker running a batch died: what it finished stays, the rest is analysed (and counted) image by image."""
    from recommender.analysis import analyse_many
    from recommender.tasks import analyse_images

    finished, interrupted, broken = (make_image(make_product(category="top", sku=f"R-{i}")) for i in range(3))
    analyse_many([finished.pk])
    ImageAnalysis.objects.filter(image=finished).update(error="kept")
    for image in (interrupted, broken):
        ImageAnalysis.objects.create(image=image, product=image.product, status="running", attempts=1)
    ImageAnalysis.objects.filter(image=broken).update(error="interrupted 2 time(s): …")  # a third death: failed
    analyse_images.push_request(delivery_info={"redelivered": True})
    try:
        outcome = analyse_images.run([finished.pk, interrupted.pk, broken.pk])
    finally:
        analyse_images.pop_request()
    assert outcome == {"already done": 1, "done": 1, "failed": 1}
    assert ImageAnalysis.objects.get(image=finished).error == "kept"  # not analysed again
    again = ImageAnalysis.objects.get(image=interrupted)
    assert again.status == "done" and again.attempts == 2 and again.error == ""
    assert "stopped its worker 3 times" in ImageAnalysis.objects.get(image=broken).error


@pytest.mark.django_db
def test_a_failed_batch_fails_only_its_images_still_running():
    from django.db import OperationalError

    from recommender.tasks import analyse_images

    done_image, running_image = (make_image(make_product(category="top", sku=f"F-{i}")) for i in range(2))
    ImageAnalysis.objects.create(image=done_image, status="done")
    ImageAnalysis.objects.create(image=running_image, status="running")
    analyse_images.on_failure(OperationalError("server closed the connection unexpectedly"), "task-id",
                              ([done_image.pk, running_image.pk],), {}, None)
    assert ImageAnalysis.objects.get(image=done_image).status == "done"
    failed = ImageAnalysis.objects.get(image=running_image)
    assert failed.status == "failed" and "server closed the connection" in failed.error


def test_worker_processes_share_the_cores(monkeypatch):
    from ml.loading import THREADS_VARIABLE, model_threads
    from recommender.tasks import share_cores_between_worker_processes, worker_model_threads

    assert worker_model_threads(2, cores=2) == 1 and worker_model_threads(1, cores=2) == 2
    assert worker_model_threads(4, cores=2) == 1 and worker_model_threads(2, cores=8) == 4
    assert worker_model_threads(2, configured=3, cores=2) == 3  # BUY_THE_LOOK["MODEL_THREADS"] wins
    for name in (THREADS_VARIABLE, "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        monkeypatch.setenv(name, "")  # restored (unset) after the test
    assert model_threads() is None

    class Worker:
        concurrency = 64  # more processes than cores: one thread each

    share_cores_between_worker_processes(sender=Worker())
    import os

    assert model_threads() == 1 and os.environ["TF_NUM_INTRAOP_THREADS"] == "1"
