# The clearing adapter, the clearing mock and the core simulator, built from Debian 12
# packages only.
#
#   docker build -t clearing-adapter:local .
#   docker run --rm clearing-adapter:local clearing-adapter --help
#
# Used by docker-compose.yml. The image holds three executables in /usr/local/bin
# (clearing-adapter, clearing-mock, core-sim), the per-country configs in
# /etc/clearing-adapter/ and the sample transfers in /usr/share/clearing-adapter/examples/.
# Secrets are never baked in: they come from the environment (CLEARING_ADAPTER_*).

# ---------------------------------------------------------------------------------------
# Build stage: the build dependencies of scripts/setup, minus the PostgreSQL server.
FROM debian:12 AS build

ARG DEBIAN_FRONTEND=noninteractive
# libboost1.81-dev conflicts with the default 1.74 libboost-dev; never install both.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build ccache pkg-config git \
      libboost1.81-dev \
      librdkafka-dev \
      libpqxx-dev libpq-dev \
      nlohmann-json3-dev \
      libspdlog-dev libfmt-dev \
      doctest-dev \
      libexpected-dev \
      libcli11-dev \
      libssl-dev \
      libjemalloc-dev \
      prometheus-cpp-dev \
      postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# .dockerignore keeps local build directories and .git out of the context.
COPY . .

# Release (warnings are errors only where scripts/test asks: CLEARING_WERROR, default off).
# ccache is off: nothing to reuse inside a one-shot build.
ENV CCACHE_DISABLE=1
RUN cmake -S . -B /build -G Ninja \
      -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target clearing-adapter clearing-mock core-sim \
 && mkdir -p /out \
 && for target in clearing-adapter clearing-mock core-sim; do \
      binary=$(find /build -type f -name "$target" -perm -u+x | head -n 1); \
      test -n "$binary" || { echo "built no executable named $target" >&2; exit 1; }; \
      install -m 0755 -s "$binary" /out/; \
    done

# ---------------------------------------------------------------------------------------
# Runtime stage: the shared libraries the executables link, nothing else.
FROM debian:12-slim AS runtime

ARG DEBIAN_FRONTEND=noninteractive
# libpqxx-6.4 pulls libpq5; libssl3 is also what libpq and the HTTPS client use;
# ca-certificates lets the clearing client verify a real clearing's TLS certificate.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpqxx-6.4 \
      librdkafka1 \
      libspdlog1.10 \
      libfmt9 \
      libssl3 \
      libjemalloc2 \
      libprometheus-cpp-core1.0 \
      libstdc++6 \
      ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 clearing \
 && useradd --system --uid 10001 --gid clearing --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin clearing

COPY --from=build /out/clearing-adapter /out/clearing-mock /out/core-sim /usr/local/bin/
COPY config/dk.json config/se.json config/no.json config/fi.json /etc/clearing-adapter/
COPY examples/transfers.dk.jsonl /usr/share/clearing-adapter/examples/

# Fail the build, not the first start, when a shared library is missing.
RUN for binary in clearing-adapter clearing-mock core-sim; do \
      if ldd "/usr/local/bin/$binary" | grep -q "not found"; then \
        ldd "/usr/local/bin/$binary" >&2; exit 1; \
      fi; \
    done

USER clearing:clearing
WORKDIR /tmp
# 8082-8084: the adapters (dk, se, no); 8081: clearing-mock; 8092: core-sim.
EXPOSE 8081 8082 8083 8084 8092
# SIGTERM is the graceful stop (see README); no shell in between, so it reaches the process.
STOPSIGNAL SIGTERM
CMD ["clearing-adapter", "run", "--config", "/etc/clearing-adapter/dk.json"]
