import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()

# Load the look models in the background of each server process (BUY_THE_LOOK["WARM_UP"]), so that the first
# search by photo does not wait for them.
from recommender import warmup  # noqa: E402

warmup.start()
