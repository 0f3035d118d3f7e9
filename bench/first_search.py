"""``python -m bench.first_search``: how long the first search by photo takes after the web server is ready.

Starts ``manage.py runserver --noreload`` on a free port (the demo shop's WSGI module warms the models up in the
background, ``BUY_THE_LOOK["WARM_UP"]``), waits until the server answers a page and — with warm-up — until its
log says the models are warm, then times one search by photo (a demo look) through ``POST /api/search/``.
Runs it twice: ``WARM_UP=1`` (the default) and ``WARM_UP=0`` (models load in the first request). Prints a
table and the load average; needs the demo database (``make demo`` or ``manage.py migrate``).
"""
import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def multipart(photo: Path):
    boundary = "----buy-the-look-bench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{photo.name}\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode() + photo.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def run(warm_up: bool, photo: Path, timeout: float = 300.0) -> dict:
    port = free_port()
    log = ROOT / "build" / f"first-search-{'warm' if warm_up else 'cold'}.log"
    log.parent.mkdir(exist_ok=True)
    env = {**os.environ, "WARM_UP": "1" if warm_up else "0", "SEARCH_THROTTLE_RATE": "1000/minute"}
    started = time.perf_counter()
    with open(log, "w") as out:
        server = subprocess.Popen([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
                                  cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = started + timeout
        while True:  # ready: answers a page
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                break
            except Exception:
                if time.perf_counter() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the server did not start; see {log}")
                time.sleep(0.2)
        ready = time.perf_counter() - started
        while warm_up and "models warmed up" not in log.read_text():
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no warm-up message; see {log}")
            time.sleep(0.2)
        warm = time.perf_counter() - started
        body, content_type = multipart(photo)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/search/", data=body,
                                         headers={"Content-Type": content_type}, method="POST")
        t0 = time.perf_counter()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status = response.status
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(request.full_url, data=body, headers=request.headers,
                                                           method="POST"), timeout=timeout) as response:
            response.read()
        second = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"warm_up": warm_up, "status": status, "page_ready_s": ready, "models_warm_s": warm,
            "first_search_s": first, "second_search_s": second}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=None, help="a photo to search with (default: a demo look)")
    args = parser.parse_args(argv)
    photo = args.photo or sorted((ROOT / "demo_data" / "looks").glob("*.jpg"))[0]
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; photo {photo.name}")
    print("| warm-up | status | server answers pages after | models warm after | first search | second search |")
    print("|---|---|---|---|---|---|")
    for warm_up in (True, False):
        r = run(warm_up, photo)
        print(f"| {'on' if warm_up else 'off'} | {r['status']} | {r['page_ready_s']:.1f} s | "
              f"{r['models_warm_s']:.1f} s | {r['first_search_s']:.2f} s | {r['second_search_s']:.2f} s |")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
