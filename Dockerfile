# The one image of the whole system: every service's package is in it (the distribution ships
# them together, and they all import shared/ and broker/), so a service is chosen when the image
# runs, not when it is built. Build from the repository root (compose.yaml does):
#   docker build -t eventful .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH

RUN useradd --system --create-home --uid 10001 --shell /usr/sbin/nologin app \
    && pip install --no-cache-dir uv==0.13.9

# Exactly what uv.lock pins, hashes checked; the dependencies in a layer of their own, so that a
# change of code alone reuses it.
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-install-project --no-cache

COPY shared ./shared
COPY broker ./broker
COPY user_svc ./user_svc
COPY order_svc ./order_svc
COPY inventory_svc ./inventory_svc
RUN uv sync --frozen --no-editable --no-cache

# Run from outside the source tree, so the installed package (with its migrations) is what runs.
WORKDIR /home/app
USER app

# Each service reads only its own variables, so all three can be set here. The default bind
# address, loopback, would be unreachable from outside the container; the ports are the
# services' defaults (8001, 8002, 8003).
ENV USER_SVC_HOST=0.0.0.0 \
    ORDER_SVC_HOST=0.0.0.0 \
    INVENTORY_SVC_HOST=0.0.0.0
EXPOSE 8001 8002 8003

# The arguments name the module to run, then its own: a service and its role
# (`docker run eventful order_svc worker`, Kubernetes `args: ["order_svc", "worker"]`; see
# `python -m order_svc --help`), or the broker's tools (`docker run eventful broker tail`).
ENTRYPOINT ["python", "-m"]
CMD ["user_svc", "all"]
