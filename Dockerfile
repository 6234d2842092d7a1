# fastdag: one image for the test suite, the benchmarks and distributed workers.
#
#   docker build -t fastdag .                                   # tests + benchmarks + worker
#   docker build -t fastdag-worker --build-arg REQUIREMENTS=my-tasks.txt .
#   docker run --rm --shm-size=2g fastdag                       # the test suite (default CMD)
#   docker run --rm --shm-size=2g -e FASTDAG_SECRET=... fastdag fastdag worker --redis URL
#
# See the "Docker" section of README.md for the benchmark and compose commands.

# --- requirements: the dependency lists, extracted so that editing fastdag's code
# --- does not reinstall them (this stage reruns, its outputs rarely change).
FROM python:3.11-slim AS requirements
# Extras of pyproject.toml to install with fastdag (comma-separated).
ARG EXTRAS=dev
# Task dependencies for worker images (a pip requirements file in the build
# context; installed when it exists, ignored otherwise).
ARG REQUIREMENTS=requirements-tasks.txt
WORKDIR /context
COPY . .
RUN mkdir /build && python -c 'import sys, tomllib; \
p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
extras = [e.strip() for e in sys.argv[1].split(",") if e.strip()]; \
deps = p["dependencies"] + [d for e in extras for d in p["optional-dependencies"][e]]; \
print("\n".join(dict.fromkeys(deps)))' "$EXTRAS" > /build/requirements.txt
RUN set -eu; \
    if [ -f "$REQUIREMENTS" ]; then \
        echo "task requirements: $REQUIREMENTS"; cp "$REQUIREMENTS" /build/tasks.txt; \
    else \
        echo "no $REQUIREMENTS in the build context: no task requirements"; \
        : > /build/tasks.txt; \
    fi

# --- the image ---------------------------------------------------------------
FROM python:3.11-slim

# redis-server: the Redis tests and benchmarks start their own on loopback ports;
# openssl: the TLS tests make a throwaway CA; chromium: the dashboard's browser tests.
RUN set -eu; apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        redis-server openssl chromium; \
    apt-get clean; rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

# Dependencies first (a cached layer), task requirements in the same resolve,
# so a conflict between them and fastdag's own fails the build, not a run.
COPY --from=requirements /build/ /tmp/build/
RUN pip install -r /tmp/build/requirements.txt -r /tmp/build/tasks.txt

WORKDIR /app
COPY . .
RUN pip install --no-deps . && pip check && rm -rf /tmp/build build fastdag.egg-info

# An unprivileged user. /dev/shm and /tmp are world-writable in containers;
# /app itself is writable so pytest can keep its cache; the code stays root-owned.
RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin fastdag && chown fastdag /app
USER fastdag

CMD ["pytest"]
