from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    name = "recommender"
    verbose_name = "Buy Me That Look"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import checks  # noqa: F401  (system checks)
        from .conf import settings

        # The adapter's ready-made receivers tell recommender.hooks about new images and changed products.
        if settings.CONNECT_RECEIVERS:
            settings.adapter.connect()
