# The shotgun_events image: one image for the daemon (the default command),
# Celery workers (`worker`) and the local site (`site`, `demo`).
#
#   docker build -t shotgun-events .
#   docker run --rm shotgun-events demo        # runs with no configuration
#
# docs/containers.md: the paths, the environment, compose and Kubernetes.
# Needs BuildKit (Docker 23 or newer) or podman; with podman, build with
# --format docker (OCI images drop the HEALTHCHECK).

# --- build: a virtualenv with the package and its dependencies -----------------
FROM debian:bookworm-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Dependencies first, in their own layer: a change to the sources rebuilds only the
# last step. Behind a TLS-inspecting proxy or a private index, hand pip its settings
# as build secrets, mounted for this step only and never stored in a layer:
#   --secret id=pip.conf,src=/etc/pip.conf
#   --secret id=ca-certificates.crt,src=/etc/ssl/certs/ca-certificates.crt
COPY pyproject.toml ./
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca-certificates.crt,target=/etc/ssl/certs/ca-certificates.crt \
    python3 -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["celery"]))' > requirements.txt \
 && python3 -m venv /opt/shotgun_events/venv \
 && /opt/shotgun_events/venv/bin/pip uninstall --yes --quiet setuptools \
 && /opt/shotgun_events/venv/bin/pip install --no-cache-dir -r requirements.txt \
 && python3 -m venv /build/tools \
 && /build/tools/bin/pip install --no-cache-dir hatchling
# The package itself as a wheel, installed in the last step of the image so that a
# source change leaves the dependencies' layer as it is.
COPY README.md LICENSE ./
COPY conf/shotgunEventDaemon.conf ./conf/
COPY plugins ./plugins
COPY src ./src
RUN /build/tools/bin/pip wheel --no-deps --no-build-isolation --wheel-dir dist .

# --- the image: Debian's Python, the virtualenv, no compilers, no pip build tools
FROM debian:bookworm-slim
ARG DEBIAN_FRONTEND=noninteractive
LABEL org.opencontainers.image.title="shotgun_events" \
      org.opencontainers.image.description="Flow Production Tracking (Shotgun) event daemon, Celery workers and local site" \
      org.opencontainers.image.licenses="MIT"
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates tzdata tini \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 shotgun \
 && useradd --system --uid 10001 --gid shotgun --no-create-home \
        --home-dir /var/lib/shotgun_events --shell /usr/sbin/nologin shotgun \
 && install -d -o shotgun -g shotgun -m 0750 \
        /var/lib/shotgun_events /var/log/shotgun_events /run/shotgun_events \
 && install -d -m 0755 /etc/shotgun_events /opt/shotgun_events/plugins
COPY --from=build /opt/shotgun_events/venv /opt/shotgun_events/venv
RUN --mount=type=bind,from=build,source=/build/dist,target=/tmp/dist \
    /opt/shotgun_events/venv/bin/pip install --no-cache-dir --no-deps --no-index \
        --root-user-action=ignore /tmp/dist/*.whl
COPY conf/container/shotgunEventDaemon.conf /etc/shotgun_events/
COPY --chmod=0755 conf/container/healthcheck.py /usr/local/bin/shotgun-events-healthcheck

# conf/container/shotgunEventDaemon.conf reads these; the site URL and the script
# name and key (SG_ED_SITE_URL, SG_ED_SCRIPT_NAME, SG_ED_API_KEY) have no default.
ENV PATH=/opt/shotgun_events/venv/bin:$PATH \
    SHOTGUN_EVENTS_CONFIG=/etc/shotgun_events/shotgunEventDaemon.conf \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SG_ED_HTTP_LISTEN=127.0.0.1:9464 \
    SG_ED_HTTP_TOKEN= \
    SG_ED_DISPATCH=auto \
    SG_ED_EXECUTOR=local \
    SG_ED_BROKER_URL=

# The state file, its journal and its lock: keep them on a volume, one daemon per volume.
VOLUME ["/var/lib/shotgun_events"]
WORKDIR /var/lib/shotgun_events
USER 10001:10001
EXPOSE 9464

# SIGTERM lets the running callbacks finish (up to [daemon] stop_timeout, 30 s) and
# saves the state; give the container longer than that to stop (docker run
# --stop-timeout 60, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# /livez fails when the engine loop has not turned for [http] live_timeout seconds.
HEALTHCHECK --interval=30s --timeout=15s --start-period=30s --retries=3 \
    CMD ["shotgun-events-healthcheck"]
# tini as PID 1: forwards signals and reaps what plugins' child processes leave behind.
ENTRYPOINT ["/usr/bin/tini", "--", "shotgunEventDaemon"]
CMD ["foreground"]
