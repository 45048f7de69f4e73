#!/usr/bin/env bash
# ClinicDesk container entrypoint.
#
#   boot.sh [web]               wait for the database, migrate and sync permissions, then serve
#   boot.sh worker [QUEUE...]   run the RQ worker (extra arguments go to `clinic worker`, e.g. --burst)
#   boot.sh scheduler           enqueue the periodic jobs (run exactly one of these)
#   boot.sh COMMAND...          run anything else, e.g. `flask --app run fab create-admin`
set -euo pipefail

cd "$(dirname "$0")"

# Fails at once when the configuration is incomplete; retries only while the database cannot be
# reached (it may still be starting next to us).
wait_for_database() {
    python - "${CLINICDESK_DB_WAIT_ATTEMPTS:-30}" <<'PY'
import sys
import time

import sqlalchemy as sa

from config import ConfigError, config_from_env

attempts = int(sys.argv[1])
try:
    config = config_from_env()
    config.validate()
except ConfigError as exc:
    sys.exit(f"boot: cannot start: {exc}")

engine = sa.create_engine(config.SQLALCHEMY_DATABASE_URI)
for attempt in range(1, attempts + 1):
    try:
        with engine.connect():
            break
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0]
        print(f"boot: database not reachable yet ({attempt}/{attempts}): {reason}",
              file=sys.stderr, flush=True)
        if attempt < attempts:
            time.sleep(2)
else:
    sys.exit(f"boot: database still unreachable after {attempts} attempts, giving up")
engine.dispose()
PY
}

command="${1:-web}"
if [ "$#" -gt 0 ]; then shift; fi

case "$command" in
    web)
        wait_for_database
        flask --app run clinic init
        exec gunicorn --config gunicorn.conf.py run:app
        ;;
    worker)
        exec flask --app run clinic worker "$@"
        ;;
    scheduler)
        # rq cron reads cron expressions in local time; app/jobs/schedule.py writes them in UTC.
        export TZ=UTC
        exec rq cron app.jobs.schedule --url "${REDIS_URL:?REDIS_URL is not set}"
        ;;
    *)
        exec "$command" "$@"
        ;;
esac
