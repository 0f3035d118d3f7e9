"""Look and search reads from a real PostgreSQL hot standby (``BUY_THE_LOOK["READ_REPLICA"]``).

The suite starts its own standby of the test server with ``scripts/start_replica.sh`` (a second cluster made by
``pg_basebackup -R``, streaming from the primary, on a free port) and stops it with ``scripts/stop_replica.sh``
at the end. Physical replication copies the whole cluster, so the pytest database is there too; the replica
alias is added to Django's connections only inside each test (Django must never create, flush or migrate a test
database on a read-only standby), and the tests are transactional: rows written inside a test's wrapping
transaction would never reach the standby.
"""
import copy
import os
import socket
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router, transaction
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext

from look_factories import add_article, bulk_inventory, make_analysis, make_image, make_product, near, png_bytes, random_unit
from recommender import replica
from recommender.looks import look_for
from recommender.models import DetectedArticle, ImageAnalysis
from recommender.routers import ReadReplicaRouter

ROOT = Path(__file__).resolve().parents[2]
ALIAS = "replica"
ROUTERS = ["recommender.routers.ReadReplicaRouter"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def standby():
    """A hot standby of the test server for the whole run: started by the project's script, stopped after."""
    primary = connections["default"].settings_dict
    port = int(os.environ.get("TEST_REPLICA_PORT") or free_port())
    env = {**os.environ, "REPLICA_PORT": str(port), "REPLICA_OWNER_PID": str(os.getpid()),
           "PRIMARY_HOST": primary["HOST"] or "127.0.0.1", "PRIMARY_PORT": str(primary["PORT"] or 5432)}
    started = subprocess.run(["bash", str(ROOT / "scripts" / "start_replica.sh")], env=env, capture_output=True,
                             text=True, timeout=600)
    if started.returncode != 0:
        pytest.fail(f"scripts/start_replica.sh failed:\n{started.stdout}\n{started.stderr}")
    try:
        yield {"port": port, "log": started.stdout}
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "stop_replica.sh")], env=env, capture_output=True,
                       text=True, timeout=300)


def wait_replayed(timeout=30):
    """Until the standby has replayed everything the primary has written so far."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        lsn = cursor.fetchone()[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connections[ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn])
            if cursor.fetchone()[0]:
                return
        time.sleep(0.05)
    pytest.fail(f"the standby did not replay up to {lsn} within {timeout} s")


def add_alias(port):
    """The standby as connection ``ALIAS`` on the pytest database (a copy of "default"'s settings), for this thread.

    Made as a *dynamic* connection (not left in ``connections.settings``): Django's test cases refuse
    connections to configured aliases a test did not declare, and declaring it would make them flush it."""
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    settings_dict.update(HOST="127.0.0.1", PORT=str(port), CONN_MAX_AGE=0)
    settings_dict["TEST"] = {**settings_dict.get("TEST", {}), "MIRROR": "default"}
    connections.settings[ALIAS] = settings_dict
    try:
        connections[ALIAS] = connections.create_connection(ALIAS)
    finally:
        del connections.settings[ALIAS]


def remove_alias():
    try:
        connections[ALIAS].close()
        del connections[ALIAS]
    except (AttributeError, KeyError):
        pass
    connections.settings.pop(ALIAS, None)


@pytest.fixture
def on_replica(standby, transactional_db, settings):
    """``READ_REPLICA`` on, pointing at the standby; the test database must have reached it first."""
    add_alias(standby["port"])
    settings.DATABASE_ROUTERS = ROUTERS
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "READ_REPLICA": ALIAS, "ANALYSE_ON_SAVE": False}
    deadline = time.monotonic() + 60
    while True:  # the pytest database was created on the primary: wait until the standby has it
        try:
            connections[ALIAS].ensure_connection()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    try:
        yield ALIAS
    finally:
        remove_alias()


def outfit_with_inventory(rng, n=12):
    """A men's look (top + footwear) and ``n`` recommendable products per category near its articles."""
    product = make_product(category="", gender="Men", outfit=True, colour="")
    image = make_image(product, content=png_bytes(300, 600, seed=1))
    analysis = make_analysis(image, full_shot=True)
    top = add_article(analysis, "top", random_unit(rng), box=(0.25, 0.15, 0.75, 0.5))
    shoe = add_article(analysis, "footwear", random_unit(rng), box=(0.3, 0.85, 0.45, 0.98), confidence=0.8)
    bulk_inventory([{"category": "top", "embedding": near(top.embedding, rng, 0.5)} for _ in range(n)]
                   + [{"category": "footwear", "embedding": near(shoe.embedding, rng, 0.5)} for _ in range(n)])
    return product, top


def statements(captured):
    return [query["sql"] for query in captured.captured_queries]


def writes(captured):
    return [sql for sql in statements(captured) if sql.lstrip().split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


# -- against the real standby ------------------------------------------------------------------------------

def test_the_standby_is_a_streaming_hot_standby_of_the_test_server(on_replica):
    with connections[ALIAS].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_database(), "
                       "(SELECT status FROM pg_stat_wal_receiver)")
        assert cursor.fetchone() == (True, connections["default"].settings_dict["NAME"], "streaming")
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone() == (False,)


def test_look_for_and_the_widget_read_from_the_replica(on_replica, rng):
    product, _ = outfit_with_inventory(rng)
    wait_replayed()
    with CaptureQueriesContext(connections["default"]) as primary, \
            CaptureQueriesContext(connections[ALIAS]) as standby:
        rows = look_for(product)
        html = Template("{% load buy_the_look %}{% buy_the_look product %}").render(Context({"product": product}))
    assert [row.category for row in rows] == ["top", "footwear"]
    assert all(len(row.recommendations) == 6 for row in rows)
    assert 'class="btl__row"' in html
    assert statements(primary) == []  # nothing of the look or the widget on the primary
    replica_sql = " ".join(statements(standby))
    assert "<=>" in replica_sql  # the nearest-neighbour SQL
    assert "catalog_product" in replica_sql and "recommender_detectedarticle" in replica_sql  # cards, articles


def test_look_api_reads_the_look_from_the_replica(on_replica, rng, client):
    product, _ = outfit_with_inventory(rng)
    wait_replayed()
    with CaptureQueriesContext(connections["default"]) as primary, \
            CaptureQueriesContext(connections[ALIAS]) as standby:
        response = client.get(f"/api/products/{product.pk}/look/")
    assert response.status_code == 200, response.content
    assert [row["category"] for row in response.json()["rows"]] == ["top", "footwear"]
    assert not any("<=>" in sql or "recommender_detectedarticle" in sql for sql in statements(primary))
    assert any("<=>" in sql for sql in statements(standby))


def test_search_by_photo_reads_from_the_replica(on_replica, rng, monkeypatch):
    from recommender import pipeline
    from recommender.photo_search import search_by_photo

    _, top = outfit_with_inventory(rng)
    wait_replayed()
    found = SimpleNamespace(category="top", confidence=0.9, box=(0.2, 0.1, 0.8, 0.5), embedding=top.embedding)
    monkeypatch.setattr(pipeline, "analyse", lambda picture, **kwargs: SimpleNamespace(
        articles=[found], gender="Men", gender_source="predicted", gender_confidence=0.9,
        image_embedding=top.embedding, model_versions={"embedder": "test"}, width=300, height=600,
        is_full_shot=False, timings={}))
    with CaptureQueriesContext(connections["default"]) as primary, \
            CaptureQueriesContext(connections[ALIAS]) as standby:
        result = search_by_photo(png_bytes(300, 600))
    assert [row.category for row in result.rows] == ["top"] and len(result.rows[0].recommendations) == 6
    assert statements(primary) == []
    assert any("<=>" in sql for sql in statements(standby))


def test_writes_go_to_the_primary(on_replica, rng):
    product, top = outfit_with_inventory(rng)
    wait_replayed()
    with CaptureQueriesContext(connections["default"]) as primary, \
            CaptureQueriesContext(connections[ALIAS]) as standby:
        with replica.look_reads():
            article = DetectedArticle.objects.get(pk=top.pk)  # read inside a look: from the replica
        assert article._state.db == ALIAS
        article.confidence = 0.5
        article.save()  # … but saved to the primary, not to the read-only standby
        from recommender.analysis import mark_queued

        image = make_image(product, content=png_bytes(200, 400, seed=7))  # an upload …
        mark_queued(image)  # … and its analysis row (what hooks.image_changed writes)
        product.name = "Renamed look"
        product.save()  # catalog's receivers → hooks.product_changed re-syncs the copies next to the vectors
    assert writes(standby) == []
    assert len(writes(primary)) >= 3
    assert DetectedArticle.objects.using("default").get(pk=top.pk).confidence == pytest.approx(0.5)


def test_inside_a_transaction_on_the_primary_looks_read_the_primary(on_replica, rng):
    """Read your own writes: the standby cannot see what the primary's open transaction has not committed."""
    product, _ = outfit_with_inventory(rng)
    wait_replayed()
    with transaction.atomic():
        extra = bulk_inventory([{"category": "top", "embedding": rows_top_embedding(product)}])[0]
        with CaptureQueriesContext(connections[ALIAS]) as standby:
            rows = look_for(product)
        assert statements(standby) == []
        assert rows[0].recommendations[0].pk == extra.pk


def rows_top_embedding(product):
    return DetectedArticle.objects.get(analysis__product=product, category="top").embedding


def test_a_new_analysis_appears_on_the_replica_and_in_its_looks(on_replica, rng):
    product, top = outfit_with_inventory(rng)
    wait_replayed()
    before = {card.pk for card in look_for(product)[0].recommendations}
    newcomer = bulk_inventory([{"category": "top", "embedding": top.embedding}])[0]  # committed on the primary
    analysis = ImageAnalysis.objects.get(product=newcomer)
    deadline = time.monotonic() + 30
    while not ImageAnalysis.objects.using(ALIAS).filter(pk=analysis.pk).exists():  # replication, polled
        assert time.monotonic() < deadline, "the new analysis did not reach the standby within 30 s"
        time.sleep(0.05)
    rows = look_for(product)
    assert rows[0].recommendations[0].pk == newcomer.pk and newcomer.pk not in before


def test_replica_down_falls_back_to_the_primary(transactional_db, settings, rng, caplog):
    add_alias(free_port())  # nothing listens there
    settings.DATABASE_ROUTERS = ROUTERS
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "READ_REPLICA": ALIAS, "ANALYSE_ON_SAVE": False}
    try:
        product, _ = outfit_with_inventory(rng)
        with CaptureQueriesContext(connections["default"]) as primary:
            rows = look_for(product)
        assert [row.category for row in rows] == ["top", "footwear"]
        assert any("<=>" in sql for sql in statements(primary))
        assert "read replica 'replica' unavailable" in caplog.text
    finally:
        remove_alias()


# -- configuration (no standby needed) ---------------------------------------------------------------------

def test_without_read_replica_nothing_is_routed(settings):
    settings.DATABASE_ROUTERS = ROUTERS
    with replica.look_reads() as db:
        assert db.alias == "default" and replica.active_alias() is None
        assert router.db_for_read(DetectedArticle) == "default"


def test_misconfigurations_name_the_setting(settings):
    settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "READ_REPLICA": "nowhere"}
    with pytest.raises(ImproperlyConfigured, match=r"READ_REPLICA.*'nowhere' is not a key of DATABASES"):
        replica.configured_alias()
    add_alias(free_port())
    try:
        settings.BUY_THE_LOOK = {**settings.BUY_THE_LOOK, "READ_REPLICA": ALIAS}
        settings.DATABASE_ROUTERS = []
        with pytest.raises(ImproperlyConfigured, match=r"recommender.routers.ReadReplicaRouter.*DATABASE_ROUTERS"):
            replica.configured_alias()
        settings.DATABASE_ROUTERS = ROUTERS
        router_ = ReadReplicaRouter()
        assert router_.allow_migrate(ALIAS, "recommender") is False
        assert router_.allow_migrate("default", "recommender") is None
        assert router_.db_for_read(DetectedArticle) is None  # outside a look: the default (primary)
    finally:
        remove_alias()
