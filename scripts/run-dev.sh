#!/usr/bin/env bash
# Start DR Portal on its embedded defaults (what `make run` calls): no server, no configuration.
#
# The web server (127.0.0.1:$PORT, default 8000), a Celery worker and Celery beat run from
# this script and stop together on Ctrl-C. Without DATABASE_URL / REDIS_URL the portal uses a
# SQLite file and a filesystem broker in $DRPORTAL_HOME (default ./var). Without
# BACKUP_AGE_RECIPIENTS a DEMO age key pair is made in $DRPORTAL_HOME/demo-age-identity.txt.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PORT="${PORT:-8000}"
HOME_DIR="${DRPORTAL_HOME:-$ROOT/var}"
PY="$ROOT/.venv/bin/python"
export DJANGO_SETTINGS_MODULE=drportal.settings
export DRPORTAL_HOME="$HOME_DIR"
# Links in alerts and reports point at this server unless told otherwise.
export PORTAL_URL="${PORTAL_URL:-http://127.0.0.1:$PORT}"
mkdir -p "$HOME_DIR"

say() { printf '==> %s\n' "$*"; }

# 1. The virtualenv (a no-op when requirements have not changed).
say "checking the virtualenv (.venv)"
make --no-print-directory --silent venv

# 2. age keys: every backup is encrypted; without keys, backups refuse to run.
if [[ -z "${BACKUP_AGE_RECIPIENTS:-}" ]]; then
    if [[ -n "${BACKUP_AGE_IDENTITY_FILE:-}" ]]; then
        echo "BACKUP_AGE_IDENTITY_FILE is set but BACKUP_AGE_RECIPIENTS is not." >&2
        echo "Set BACKUP_AGE_RECIPIENTS to its public key (age-keygen -y \"$BACKUP_AGE_IDENTITY_FILE\" prints it)," >&2
        echo "or unset both to run with a demo key." >&2
        exit 1
    fi
    DEMO_KEY="$HOME_DIR/demo-age-identity.txt"
    if [[ ! -s "$DEMO_KEY" ]]; then
        say "creating a demo age key pair in $DEMO_KEY"
        DEMO_KEY="$DEMO_KEY" "$PY" -c '
import os
from pathlib import Path

import django

django.setup()
from backups.keys import generate_identity_file

generate_identity_file(Path(os.environ["DEMO_KEY"]))
'
    fi
    public_key="$(sed -n 's/^# public key: \(age1[0-9a-z]*\)$/\1/p' "$DEMO_KEY" | head -n 1)"
    if [[ -z "$public_key" ]]; then
        echo "$DEMO_KEY has no '# public key: age1...' line; delete it to make a new demo key." >&2
        exit 1
    fi
    export BACKUP_AGE_RECIPIENTS="$public_key"
    export BACKUP_AGE_IDENTITY_FILE="$DEMO_KEY"
    cat <<EOF

##########################################################################################
#  WARNING: DEMO ENCRYPTION KEY -- NOT FOR REAL BACKUPS
#
#  BACKUP_AGE_RECIPIENTS is not set, so backups are encrypted to a demo age key:
#    public key:  $public_key
#    PRIVATE key: $DEMO_KEY
#  Anyone who can read that file can decrypt these backups, and deleting it makes them
#  unrecoverable. It lives on this machine only.
#
#  In production, make your own keys (age-keygen -o key.txt), set BACKUP_AGE_RECIPIENTS
#  to the operational public key PLUS an offline escrow public key, keep the escrow
#  private key offline (printed, in a safe), and point BACKUP_AGE_IDENTITY_FILE at the
#  operational private key. Never commit private keys. See README.md, "Keys".
##########################################################################################

EOF
fi

# Everything another terminal needs to reach this portal (manage.py, celery), in one file to source:
# without DRPORTAL_HOME a command would look for the portal in ./var and find none. Mode 0600: it may
# hold credentials passed in the environment (DATABASE_URL...), like the secret key file beside it.
ENV_FILE="$HOME_DIR/env"
(
    umask 077
    {
        echo "# Written by scripts/run-dev.sh (make run): source it in another terminal."
        for name in DJANGO_SETTINGS_MODULE DRPORTAL_HOME PORTAL_URL BACKUP_AGE_RECIPIENTS BACKUP_AGE_IDENTITY_FILE \
            DATABASE_URL REDIS_URL CELERY_BROKER_URL DJANGO_SECRET_KEY FIELD_ENCRYPTION_KEYS; do
            if [[ -n "${!name:-}" ]]; then printf 'export %s=%q\n' "$name" "${!name}"; fi
        done
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
)

# 3. Database schema and the shipped plan (both idempotent).
say "migrating the database"
"$PY" manage.py migrate --noinput
say "applying plans/botflow.toml"
"$PY" manage.py applyplan plans/botflow.toml

# 4. An administrator, the first time only.
PASSWORD_FILE="$HOME_DIR/admin-password.txt"
PASSWORD_FILE="$PASSWORD_FILE" "$PY" -c '
import os
import secrets
from pathlib import Path

import django

django.setup()
from django.contrib.auth import get_user_model

User = get_user_model()
path = Path(os.environ["PASSWORD_FILE"])
if User.objects.filter(is_superuser=True).exists():
    if path.exists():
        print(f"==> an administrator exists (the password made for admin was saved in {path})")
    else:
        print("==> an administrator exists (python manage.py changepassword NAME resets a password)")
elif User.objects.filter(username="admin").exists():
    print("==> a user named admin exists but no superuser; create one with: .venv/bin/python manage.py createsuperuser")
else:
    password = secrets.token_urlsafe(18)
    User.objects.create_superuser("admin", "", password)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(password + "\n")
    print()
    print("==> created the administrator:  username: admin   password: " + password)
    print(f"    (shown once; also saved in {path}, mode 0600. Change it after logging in.)")
    print()
'

# 5. Web server, worker and beat, stopped together.
pids=()
stop_all() {
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        say "stopping web server, worker and beat"
        # TERM to each main process only: Celery's worker then stops its own pool after the
        # task in hand (warm shutdown). Whatever is left after 30 s is killed, group and all.
        for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
        for _ in $(seq 1 150); do
            alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            ((alive)) || break
            sleep 0.2
        done
        for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    fi
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each runs in its own session (process group), so stopping one stops its children too;
# output goes to this terminal with a prefix naming the process.
start() {
    local name="$1"
    shift
    # The prefixing sed ignores Ctrl-C so that it outlives the process it reads from.
    setsid "$@" > >(trap '' INT TERM && exec sed -u "s/^/[$name] /") 2>&1 &
    pids+=("$!")
}

# Refuse early if another process (another `make run`?) has the port: it would answer for us.
if ! PORT="$PORT" "$PY" -c '
import os, socket
with socket.socket() as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver: TIME_WAIT is no conflict
    s.bind(("127.0.0.1", int(os.environ["PORT"])))
' 2>/dev/null; then
    echo "127.0.0.1:$PORT is already in use; stop what runs there or pick another port: PORT=8001 make run" >&2
    exit 1
fi

say "starting web server on 127.0.0.1:$PORT, Celery worker and Celery beat"
start web "$PY" manage.py runserver "127.0.0.1:$PORT" --noreload
start worker "$ROOT/.venv/bin/celery" -A drportal worker -l INFO
start beat "$ROOT/.venv/bin/celery" -A drportal beat -l INFO

# Say where to go once the login page answers (giving up if the web server exits).
if PORT="$PORT" WEB_PID="${pids[0]}" "$PY" -c '
import os, sys, time, urllib.request
url = "http://127.0.0.1:" + os.environ["PORT"] + "/admin/login/"
for _ in range(300):
    try:
        os.kill(int(os.environ["WEB_PID"]), 0)
    except OSError:
        sys.exit(1)
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(1)
'; then
    cat <<EOF

==> DR Portal is running:  http://127.0.0.1:$PORT/admin/
    Ctrl-C stops the web server, the worker and beat.
    To run management commands beside it (same portal, same keys), in another terminal:
      cd $ROOT && source $ENV_FILE
      .venv/bin/python manage.py backup portal

EOF
else
    echo "the web server did not answer on http://127.0.0.1:$PORT/admin/login/ (see [web] lines above)" >&2
fi

# Run until Ctrl-C or until one of the three stops (then stop the others).
set +e
wait -n "${pids[@]}"
status=$?
say "a process exited (status $status); stopping the others"
exit "$status"
