# One image for the five services; docker-compose.yml picks the service by its command.
FROM python:3.11-slim
# The portal's PDFs: WeasyPrint's Pango, and fonts that cover Vietnamese.
RUN apt-get update && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
    fonts-noto-core && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY shared ./shared
COPY services ./services
# What the services read from deploy/ by default: the roster, the working calendar, the national
# portal's status table.
COPY deploy/roster.yaml deploy/calendar.yaml deploy/dvcqg-status.yaml ./deploy/
# The Helm chart's setup Job (indexes, broker definitions): python -m tools.setup
COPY tools/__init__.py tools/setup.py tools/backup.py ./tools/
RUN useradd --system --uid 10001 motcua
USER motcua
# Overridden per service in docker-compose.yml.
CMD ["python", "-m", "services.intake"]
