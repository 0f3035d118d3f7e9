"""``manage.py analyse [--pending | --all | --failed | --product ID …]``: analyse product images in this process.

Useful without a worker (after ``import_catalogue``, or when the broker was down during uploads: images then
stay "queued"). Shows a progress bar and ends with a summary. Catalogue photos that are not full shots are
embedded in batches (``--batch-size``).

``--queue [NAME]``: instead of analysing in this process, send one ``recommender.analyse_images`` task per batch
of ``--batch-size`` images (default ``EMBED_BATCH_SIZE``, 32) to the Celery queue NAME (default ``BUY_THE_LOOK["BULK_QUEUE"]``, "looks-bulk"), for workers started with
``-Q looks-bulk``: bulk work never waits in front of the analyses of new uploads (``ANALYSIS_QUEUE``).
"""
import time
from collections import Counter
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from tqdm import tqdm

from recommender.conf import settings
from recommender.models import ImageAnalysis


#: An analysis "running" for longer than this is taken as abandoned (its process died) by ``--pending``.
STALE_RUNNING_MINUTES = 15


class Command(BaseCommand):
    help = "Analyse product images (pose gate, articles, embeddings) in this process and store the results."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--pending", action="store_true",
                           help="images never analysed, still queued, or abandoned while running (the default)")
        which.add_argument("--all", action="store_true", help="every product image")
        which.add_argument("--failed", action="store_true", help="images whose last analysis failed")
        which.add_argument("--product", action="append", metavar="ID",
                           help="the images of the product with this primary key (repeatable)")
        parser.add_argument("--limit", type=int, help="at most this many images")
        parser.add_argument("--batch-size", type=int, default=None,
                            help=f"catalogue photos embedded per batch (default {settings.EMBED_BATCH_SIZE})")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        add_queue_argument(parser)

    def select(self, options):
        adapter = settings.adapter
        images = adapter.all_images()
        if options["all"]:
            label = "all images"
        elif options["failed"]:
            images, label = images.filter(analysis__status=ImageAnalysis.Status.FAILED), "failed images"
        elif options["product"]:
            wanted = options["product"]
            bad = [value for value in wanted if not str(value).isdigit()]
            if bad:
                raise CommandError(f"--product takes product primary keys (numbers), got {', '.join(bad)}")
            pks = [int(value) for value in wanted]
            known = set(adapter.get_product_model()._default_manager.filter(pk__in=pks).values_list("pk", flat=True))
            unknown = [str(pk) for pk in pks if pk not in known]
            if unknown:
                raise CommandError(f"no product with primary key {', '.join(unknown)}")
            images = adapter.images_of_products(pks)
            label = f"images of product(s) {', '.join(str(pk) for pk in pks)}"
        else:
            # Never analysed, queued, or "running" for so long that its process must have died.
            stale = timezone.now() - timedelta(minutes=STALE_RUNNING_MINUTES)
            images = images.filter(
                Q(analysis__isnull=True) | Q(analysis__status=ImageAnalysis.Status.QUEUED)
                | Q(analysis__status=ImageAnalysis.Status.RUNNING, analysis__started_at__lt=stale)
            )
            label = "pending images"
        return images, label

    def handle(self, *args, **options):
        images, label = self.select(options)
        ids = list(images.order_by("id").values_list("id", flat=True))
        if options["limit"]:
            ids = ids[: options["limit"]]
        if not ids:
            self.stdout.write(f"Nothing to analyse ({label}: 0).")
            return
        verb = "Sending" if options.get("queue") is not None else "Analysing"
        self.stdout.write(f"{verb} {len(ids)} {label}…")
        self.run(ids, options)

    def run(self, ids, options):
        if options.get("queue") is not None:
            return self.send(ids, options["queue"] or settings.BULK_QUEUE, options)
        from recommender.analysis import analyse_many

        counts, articles, errors = Counter(), 0, []
        started = time.perf_counter()
        bar = tqdm(total=len(ids), unit="image", disable=options.get("no_progress"), file=self.stderr._out)

        def on_done(analysis):
            nonlocal articles
            counts[analysis.status] += 1
            if analysis.status == ImageAnalysis.Status.FAILED:
                errors.append((analysis.image_id, analysis.error))
            else:
                articles += analysis.articles.count()
            bar.update(1)
            bar.set_postfix({status: n for status, n in sorted(counts.items())}, refresh=False)

        try:
            analyse_many(ids, batch_size=options.get("batch_size"), on_done=on_done)
        finally:
            bar.close()
        elapsed = time.perf_counter() - started
        total = sum(counts.values())
        full_shots = ImageAnalysis.objects.filter(image_id__in=ids, is_full_shot=True,
                                                  status=ImageAnalysis.Status.DONE).count()
        self.stdout.write(
            f"Analysed {total} image(s) in {elapsed:.1f} s ({total / elapsed if elapsed else 0:.1f} images/s): "
            + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            + f"; {full_shots} full shot(s); {articles} article(s) stored."
        )
        for image_id, error in errors[:20]:
            self.stdout.write(self.style.WARNING(f"  image {image_id}: {error}"))
        if len(errors) > 20:
            self.stdout.write(self.style.WARNING(f"  … and {len(errors) - 20} more failures (see the admin)."))

    def send(self, ids, queue, options):
        """One ``analyse_images`` task per batch of images on Celery queue ``queue`` (``--queue``)."""
        from recommender.hooks import is_eager, queue_batch

        if is_eager():
            raise CommandError("--queue needs a Celery broker (CELERY_BROKER_URL; tasks run eagerly without one): "
                               "leave out --queue to analyse in this process")
        size = max(1, options.get("batch_size") or settings.EMBED_BATCH_SIZE)
        bar = tqdm(total=len(ids), unit="image", disable=options.get("no_progress"), file=self.stderr._out)
        sent = tasks = 0
        try:
            for offset in range(0, len(ids), size):
                batch = ids[offset: offset + size]
                if not queue_batch(batch, queue=queue):
                    raise CommandError(f"the broker is unavailable: {sent} of {len(ids)} analyses sent to queue "
                                       f"{queue!r}; run the command again when it is back")
                sent += len(batch)
                tasks += 1
                bar.update(len(batch))
        finally:
            bar.close()
        self.stdout.write(f"Sent {sent} analyses to the Celery queue {queue!r} ({tasks} task(s) of up to {size} "
                          f"images): a worker started with `celery -A <project> worker -Q {queue}` analyses them.")


def add_queue_argument(parser):
    parser.add_argument(
        "--queue", nargs="?", const="", default=None, metavar="NAME",
        help="send one analysis task per batch of images to this Celery queue (default BUY_THE_LOOK['BULK_QUEUE'], "
             "'looks-bulk') instead of analysing in this process; needs a broker and a worker on that queue")
