"""``python -m bench.soak`` (``make soak``): mixed traffic on a live demo shop for a while, and what it did to it.

Sets up its own database (``shop_soak``: the demo catalogue and looks, imported and analysed), then starts
- the web server: gunicorn with ``shop.wsgi`` (2 sync workers, models warmed up at start),
- a real Celery worker on Redis (``--concurrency 1``), the widget cache on Redis,
and for ``--minutes`` (default 15) sends, from ``--clients`` threads, a mix of
- product pages (looks, with the widget; and single products), the look API,
- search by photo (the demo looks and catalogue photos) within the search throttle,
- staff uploads of new images through the API (analysed by the worker) and price edits through the API.
Every 10 s it samples the RSS of the web workers and of the Celery worker (its pool processes included).

At the end it waits for the uploaded images' analyses to finish (up to 5 minutes), then writes
``docs/soak.md`` (requests by route and status, p50/p95 per route, RSS over time, analyses queued vs finished,
the targets), ``docs/soak.json`` and the RSS chart ``docs/soak-rss.png``. Targets: 0 responses ≥ 500, 0
analyses lost or stuck, RSS growth after warm-up ≤ 10 %.
"""
import argparse
import io
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATABASE = "shop_soak"
BROKER = "redis://127.0.0.1:6379/11"
CACHE = "redis://127.0.0.1:6379/12"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(media):
    return {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "CELERY_BROKER_URL": BROKER,
        "CACHE_URL": CACHE,
        "MEDIA_ROOT": str(media),
        "SEARCH_THROTTLE_RATE": "30/minute",
        "PYTHONUNBUFFERED": "1",
        "DEBUG": "1",
    }


def manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)


def prepare(env):
    """A fresh soak database with the demo shop analysed (eager: no broker for these commands)."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')
    eager = {k: v for k, v in env.items() if k != "CELERY_BROKER_URL"}
    manage(eager, "migrate", "--noinput", "-v", "0")
    manage(eager, "import_catalogue", "--styles", "demo_data/products/styles.csv", "--images",
           "demo_data/products/images")
    manage(eager, "import_looks", "--photos", "demo_data/looks")
    manage(eager, "analyse", "--pending", "--no-progress")
    code = ("from django.contrib.auth import get_user_model; from rest_framework.authtoken.models import Token; "
            "u = get_user_model().objects.create_user('soak-staff', password='soak-pw-1', is_staff=True, "
            "is_superuser=True); print(Token.objects.create(user=u).key)")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=eager, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def tree_rss_mb(pid):
    """Resident memory of a process and its descendants, in MB (from /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            with open(f"/proc/{current}/task/{current}/children") as handle:
                todo.extend(int(child) for child in handle.read().split())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def percentile(values, share):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


class Traffic:
    def __init__(self, base, token, env):
        import requests

        self.base, self.token = base, token
        self.session_factory = requests.Session
        self.records = []  # (route, status, ms, t)
        self.lock = threading.Lock()
        self.uploaded = []  # image ids
        self.started = time.monotonic()
        self.search_times = []
        catalogue = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c",
             "import json; from catalog.models import Product; "
             "print(json.dumps([[p.pk, p.slug, p.master_category == 'Outfit', p.look_category] "
             "for p in Product.objects.all()]))"],
            cwd=ROOT, env={k: v for k, v in env.items() if k != "CELERY_BROKER_URL"}, check=True,
            capture_output=True, text=True).stdout.strip().splitlines()[-1]
        self.products = json.loads(catalogue)
        self.looks = [p for p in self.products if p[2]]
        self.items = [p for p in self.products if not p[2] and p[3]]
        self.photos = sorted((ROOT / "demo_data" / "looks").glob("*.jpg"))
        self.catalogue_photos = sorted((ROOT / "demo_data" / "products" / "images").glob("*.jpg"))

    def record(self, route, response_or_error, began):
        status = getattr(response_or_error, "status_code", "error")
        with self.lock:
            self.records.append((route, status, (time.perf_counter() - began) * 1000, time.monotonic() - self.started))
        return response_or_error

    def call(self, session, route, method, path, **kwargs):
        began = time.perf_counter()
        try:
            response = session.request(method, self.base + path, timeout=120, **kwargs)
        except Exception as error:  # noqa: BLE001 — counted as an error
            return self.record(route, error, began)
        return self.record(route, response, began)

    def search_allowed(self):
        """At most 25 searches per rolling minute (the throttle is 30/minute for the one client address)."""
        now = time.monotonic()
        with self.lock:
            self.search_times = [t for t in self.search_times if now - t < 60]
            if len(self.search_times) >= 25:
                return False
            self.search_times.append(now)
            return True

    def one(self, session, rng):
        roll = rng.random()
        if roll < 0.35:
            pk, slug, *_ = rng.choice(self.looks)
            self.call(session, "look page", "GET", f"/products/{pk}-{slug}/")
        elif roll < 0.55:
            pk, slug, *_ = rng.choice(self.items)
            self.call(session, "product page", "GET", f"/products/{pk}-{slug}/")
        elif roll < 0.75:
            pk = rng.choice(self.looks)[0]
            self.call(session, "look API", "GET", f"/api/products/{pk}/look/?k={rng.choice([4, 6, 8])}")
        elif roll < 0.85 and self.search_allowed():
            photo = rng.choice(self.photos + self.catalogue_photos[:40])
            self.call(session, "search API", "POST", "/api/search/",
                      files={"image": (photo.name, photo.read_bytes(), "image/jpeg")})
        elif roll < 0.93:
            pk = rng.choice(self.looks + self.items)[0]
            photo = rng.choice(self.photos + self.catalogue_photos)
            data = _altered(photo.read_bytes(), rng)
            response = self.call(session, "staff upload", "POST", f"/api/products/{pk}/images/",
                                 files={"image": ("upload.jpg", data, "image/jpeg")},
                                 headers={"Authorization": f"Token {self.token}"})
            if getattr(response, "status_code", None) == 201:
                with self.lock:
                    self.uploaded.append(response.json()["id"])
        else:
            pk = rng.choice(self.items)[0]
            self.call(session, "staff edit", "PATCH", f"/api/products/{pk}/",
                      json={"price": f"{rng.randint(10, 120)}.99"}, headers={"Authorization": f"Token {self.token}"})

    def run(self, seconds, clients):
        stop = time.monotonic() + seconds

        def client(number):
            rng = random.Random(number)
            session = self.session_factory()
            while time.monotonic() < stop:
                self.one(session, rng)

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
        for thread in threads:
            thread.start()
        return threads


def _altered(data, rng):
    """The photo re-encoded with a small random change (a new file, not a duplicate of an existing image)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    x, y = rng.randrange(image.width), rng.randrange(image.height)
    image.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def analyses_of(env, image_ids):
    code = ("import json, sys; from recommender.models import ImageAnalysis; from collections import Counter; "
            f"ids = {sorted(image_ids)!r}; "
            "rows = dict(ImageAnalysis.objects.filter(image_id__in=ids).values_list('image_id', 'status')); "
            "print(json.dumps({'statuses': Counter(rows.get(i, 'none') for i in ids)}))")
    out = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT,
                         env={k: v for k, v in env.items() if k != "CELERY_BROKER_URL"}, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["statuses"]


def chart(samples, path, warm_up_s):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.2), dpi=110)
    t = [s["t"] / 60 for s in samples]
    axis.plot(t, [s["web_mb"] for s in samples], label="web (gunicorn, 2 workers)")
    axis.plot(t, [s["worker_mb"] for s in samples], label="Celery worker (with its pool)")
    axis.axvline(warm_up_s / 60, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel("minutes")
    axis.set_ylabel("RSS, MB")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title("Resident memory during the soak run", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)


def growth(samples, key, warm_up_s):
    after = [s[key] for s in samples if s["t"] >= warm_up_s]
    if len(after) < 2:
        return None
    return (after[-1] - after[0]) / after[0] * 100


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--warm-up", type=float, default=180.0, help="seconds counted as warm-up for RSS growth")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "soak.md")
    args = parser.parse_args(argv)

    import redis

    media = ROOT / "build" / "soak-media"
    media.mkdir(parents=True, exist_ok=True)
    env = environment(media)
    load_before = os.getloadavg()
    print("preparing the soak database…", flush=True)
    token = prepare(env)
    for url in (BROKER, CACHE):
        redis.Redis.from_url(url).flushdb()
    port = free_port()
    logs = ROOT / "build"
    web_log, worker_log = open(logs / "soak-web.log", "w"), open(logs / "soak-worker.log", "w")
    web = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "shop.wsgi", "-b", f"127.0.0.1:{port}",
                            "-w", "2", "--timeout", "180"], cwd=ROOT, env=env, stdout=web_log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    worker = subprocess.Popen([str(ROOT / ".venv" / "bin" / "celery"), "-A", "shop", "worker", "--loglevel=INFO",
                               "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
                               "--hostname", "soak@%h"], cwd=ROOT, env=env, stdout=worker_log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    samples, stop_sampling = [], threading.Event()
    started = time.monotonic()

    def sample():
        while not stop_sampling.is_set():
            samples.append({"t": time.monotonic() - started, "web_mb": tree_rss_mb(web.pid),
                            "worker_mb": tree_rss_mb(worker.pid)})
            stop_sampling.wait(10)

    try:
        import requests

        deadline = time.monotonic() + 300
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError("the web server did not start; see build/soak-web.log")
                time.sleep(0.5)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # Traffic starts once every process has its models (2 web workers, 1 worker pool process).
        while (Path(web_log.name).read_text().count("models warmed up") < 2
               or "models warmed up" not in Path(worker_log.name).read_text()):
            if time.monotonic() > deadline + 300:
                raise RuntimeError("the models did not warm up; see build/soak-*.log")
            time.sleep(1)
        warm_at = time.monotonic() - started
        traffic = Traffic(f"http://127.0.0.1:{port}", token, env)
        print(f"soaking for {args.minutes:g} min with {args.clients} clients…", flush=True)
        for thread in traffic.run(args.minutes * 60, args.clients):
            thread.join()
        ran = time.monotonic() - started
        wait_until = time.monotonic() + 300
        while True:
            statuses = analyses_of(env, traffic.uploaded)
            pending = sum(n for s, n in statuses.items() if s in ("queued", "running", "none"))
            if not pending or time.monotonic() > wait_until:
                break
            time.sleep(5)
    finally:
        stop_sampling.set()
        for process in (web, worker):
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=30)
            except Exception:  # noqa: BLE001
                os.killpg(process.pid, signal.SIGKILL)
        web_log.close()
        worker_log.close()

    by_route = defaultdict(list)
    for route, status, ms, _ in traffic.records:
        by_route[route].append((status, ms))
    routes = {}
    for route, items in sorted(by_route.items()):
        ok = [ms for status, ms in items if status != "error" and status < 500]
        routes[route] = {"requests": len(items), "statuses": dict(Counter(str(s) for s, _ in items)),
                         "p50_ms": percentile(ok, 0.5), "p95_ms": percentile(ok, 0.95)}
    errors_5xx = sum(1 for _, status, _, _ in traffic.records if status == "error" or status >= 500)
    lost = sum(n for s, n in statuses.items() if s in ("queued", "running", "none"))
    report = {
        "minutes": args.minutes, "clients": args.clients, "seconds_run": ran, "requests": len(traffic.records),
        "load_average_before": load_before, "load_average_after": os.getloadavg(), "routes": routes,
        "responses_5xx_or_errors": errors_5xx, "uploads": len(traffic.uploaded), "analyses": statuses,
        "analyses_lost_or_stuck": lost, "rss_samples": samples,
        "rss_growth_after_warm_up_percent": {"web": growth(samples, "web_mb", args.warm_up),
                                             "worker": growth(samples, "worker_mb", args.warm_up)},
        "warm_up_seconds": args.warm_up, "models_warm_after_s": warm_at,
    }
    out = args.out
    out.with_suffix(".json").write_text(json.dumps(report, indent=1, default=str))
    chart(samples, out.with_name("soak-rss.png"), args.warm_up)
    out.write_text(render(report))
    print(render(report))


def render(r):
    g = r["rss_growth_after_warm_up_percent"]
    rows = "\n".join(
        f"| {route} | {v['requests']} | {', '.join(f'{k}: {n}' for k, n in sorted(v['statuses'].items()))} | "
        f"{v['p50_ms']:.0f} | {v['p95_ms']:.0f} |" if v["p50_ms"] is not None else
        f"| {route} | {v['requests']} | {v['statuses']} | – | – |"
        for route, v in r["routes"].items())
    first = next((s for s in r["rss_samples"] if s["t"] >= r["warm_up_seconds"]), r["rss_samples"][0])
    last = r["rss_samples"][-1]

    def pct(value):
        return "–" if value is None else f"{value:+.1f} %"

    def verdict(ok):
        return "met" if ok else "**missed**"

    return f"""# Soak run

Made by `make soak` (`python -m bench.soak --minutes {r['minutes']:g} --clients {r['clients']}`): the demo shop
on gunicorn (2 workers) with a real Celery worker on Redis and the widget cache on Redis, {r['clients']} client
threads of mixed traffic for {r['minutes']:g} minutes ({r['requests']:,} requests), then up to 5 minutes for the
uploaded images' analyses to finish. Load average before {r['load_average_before'][0]:.2f}, after
{r['load_average_after'][0]:.2f} (2 cores; other work on the machine counts in the latencies).

| target | result | |
|---|---|---|
| 0 responses ≥ 500 (or connection errors) | {r['responses_5xx_or_errors']} | {verdict(r['responses_5xx_or_errors'] == 0)} |
| 0 analyses lost or stuck | {r['analyses_lost_or_stuck']} of {r['uploads']} uploads ({', '.join(f'{k}: {n}' for k, n in sorted(r['analyses'].items()))}) | {verdict(r['analyses_lost_or_stuck'] == 0)} |
| RSS growth after warm-up ≤ 10 % (web) | {pct(g['web'])} ({first['web_mb']:.0f} → {last['web_mb']:.0f} MB) | {verdict(g['web'] is not None and g['web'] <= 10)} |
| RSS growth after warm-up ≤ 10 % (worker) | {pct(g['worker'])} ({first['worker_mb']:.0f} → {last['worker_mb']:.0f} MB) | {verdict(g['worker'] is not None and g['worker'] <= 10)} |

| route | requests | statuses | p50 ms | p95 ms |
|---|---|---|---|---|
{rows}

Search by photo is kept under the throttle (25 per rolling minute for the one client address; the rate is
30/minute), so its 429s are the throttle working, not failures. Traffic starts once the models are loaded in
every process ({r['models_warm_after_s']:.0f} s after start); RSS growth is measured from
{r['warm_up_seconds']:.0f} s on.

![RSS of the web and worker processes over the run](soak-rss.png)
"""


if __name__ == "__main__":
    main()
