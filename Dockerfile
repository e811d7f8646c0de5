# One image for every finplat service; the command picks the service (`finplat <area> serve`).
FROM python:3.11-slim
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
COPY schemas ./schemas
RUN uv sync --frozen --no-dev
ENV PATH=/app/.venv/bin:$PATH
ENTRYPOINT ["finplat"]
CMD ["--help"]
