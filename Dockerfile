# One image for every finplat service; the command picks the service (`finplat <area> serve`).

# The gateway's web page, built with Node in a stage of its own: only web/dist reaches the image.
FROM node:20-slim AS web
WORKDIR /app/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/build.mjs web/index.html web/docs.html ./
COPY web/src ./src
RUN npm run --silent build

FROM python:3.11-slim
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never PYTHONUNBUFFERED=1
RUN pip install --no-cache-dir uv==0.13.8
# The services run as this user, not root. The uid and gid are fixed so that a bind mount or an
# existing volume can be handed to it on the host (`chown 10001:10001`). It writes only the
# backtest state (/var/lib/finplat in compose; var/ under /app by default) and its home
# (numba's kernel cache); the code stays root's, read-only to the services.
RUN groupadd --system --gid 10001 finplat \
 && useradd --system --uid 10001 --gid finplat --create-home --home-dir /home/finplat \
      --shell /usr/sbin/nologin finplat \
 && mkdir -p /var/lib/finplat /app/var \
 && chown finplat:finplat /var/lib/finplat /app/var
# numba caches compiled kernels beside their source by default, which this user cannot write.
ENV NUMBA_CACHE_DIR=/home/finplat/.cache/numba
WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
COPY schemas ./schemas
# Where the gateway looks by default (FINPLAT_GATEWAY_WEB_DIR): web/dist beside src/.
COPY --from=web /app/web/dist ./web/dist
RUN uv sync --frozen --no-dev
ENV PATH=/app/.venv/bin:$PATH
# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd file.
USER 10001:10001
ENTRYPOINT ["finplat"]
CMD ["--help"]
