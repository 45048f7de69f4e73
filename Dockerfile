# ClinicDesk: one image for the web app, the RQ worker and the cron scheduler.
#   docker build -t clinicdesk .
#   docker run ... clinicdesk [web|worker|scheduler|COMMAND...]   (see boot.sh, docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CLINICDESK_ENV=production \
    PORT=8000
# rq cron reads cron expressions in local time; app/jobs/schedule.py writes them in UTC.
ENV TZ=UTC

RUN useradd --system --create-home --home-dir /home/clinicdesk --uid 10001 --user-group clinicdesk

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. Runtime pins only: no test tools.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root: the app can read it but not change it.
COPY . .
RUN if ls translations/*/LC_MESSAGES/*.po >/dev/null 2>&1; then \
        pybabel compile -d translations; \
    else \
        echo "No translation catalogues yet: nothing to compile"; \
    fi \
    && mkdir -p instance \
    && chown clinicdesk:clinicdesk instance

USER clinicdesk

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('PORT', '8000'), timeout=4)" || exit 1

ENTRYPOINT ["./boot.sh"]
CMD ["web"]
