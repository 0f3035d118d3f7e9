#!/usr/bin/env bash
# `make serve`: the demo shop on its production server — gunicorn with DEBUG off, the static files collected
# (collectstatic into STATIC_ROOT, default staticfiles/, git-ignored) and served by WhiteNoise with compressed,
# content-hashed names (SERVE_STATIC), the uploaded product photos served from MEDIA_ROOT (SERVE_MEDIA).
# Development server instead: `make dev` (runserver, DEBUG on, reloads on code changes).
#
# Environment (all optional; every other variable shop/settings.py reads applies too):
#   HOST, PORT            where to listen (127.0.0.1, 8000)
#   WEB_WORKERS           gunicorn worker processes (2); each loads the models (~1 GB RSS) at start
#   WEB_TIMEOUT           seconds before a stuck request's worker is restarted (180, as `make soak`)
#   MAX_REQUESTS          a worker is replaced after this many requests (1000, ± up to 100 at random) — RSS crept
#                         up slowly in the soak run (docs/soak.md); the new worker warms its models up again
#   SECRET_KEY            default: generated once into SECRET_KEY_FILE (.cache/serve-secret-key)
#   ALLOWED_HOSTS         default: HOST, 127.0.0.1 and localhost; any host name when HOST is 0.0.0.0 or ::
#   SECURE_SSL_REDIRECT   0: the server speaks plain HTTP; set 1 behind a proxy that terminates TLS (and sets
#                         X-Forwarded-Proto), which also makes cookies HTTPS-only (SECURE_COOKIES)
#   PY                    the Python with the requirements (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
PY=${PY:-.venv/bin/python}

export DEBUG=0 SERVE_STATIC=1 SERVE_MEDIA=${SERVE_MEDIA:-1}
export SECURE_SSL_REDIRECT=${SECURE_SSL_REDIRECT:-0}
export SECURE_COOKIES=${SECURE_COOKIES:-$SECURE_SSL_REDIRECT}

if [ -z "${SECRET_KEY:-}" ]; then
    key_file=${SECRET_KEY_FILE:-.cache/serve-secret-key}
    if [ ! -s "$key_file" ]; then
        mkdir -p "$(dirname "$key_file")"
        (umask 077 && "$PY" -c "import secrets; print(secrets.token_urlsafe(50))" > "$key_file")
    fi
    SECRET_KEY=$(cat "$key_file")
    export SECRET_KEY
fi

case "$HOST" in
    *:*) bracketed="[${HOST#[}"; bracketed="${bracketed%]}]" ;;  # IPv6: [::1]
    *) bracketed=$HOST ;;
esac
if [ -z "${ALLOWED_HOSTS:-}" ]; then
    case "$HOST" in
        0.0.0.0|::|"[::]") ALLOWED_HOSTS="*" ;;  # listening on every address: reached by any of its names
        *) ALLOWED_HOSTS="$bracketed,127.0.0.1,localhost" ;;
    esac
    export ALLOWED_HOSTS
fi

"$PY" manage.py collectstatic --noinput -v 0

# --no-control-socket: gunicorn's control interface (one socket per user, ~/.gunicorn/gunicorn.ctl) is not used;
# without it a second server of the same user (a test, `make soak`) does not take over the first one's socket
# (gunicorn removes an existing socket file at that path and listens there itself).
exec "$PY" -m gunicorn shop.wsgi:application \
    --bind "$bracketed:$PORT" \
    --workers "${WEB_WORKERS:-2}" \
    --timeout "${WEB_TIMEOUT:-180}" \
    --max-requests "${MAX_REQUESTS:-1000}" --max-requests-jitter 100 \
    --access-logfile - --error-logfile - \
    --no-control-socket
