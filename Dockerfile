# Root filesystem of the vsphere-volume managed plugin: scripts/build-plugin
# exports a container of this image into build/plugin/<name>/rootfs. No CMD:
# the plugin's entrypoint comes from config.json.
#
# No registry is needed: the default base is imported by scripts/base-image.
# RUN steps reach PyPI: build with `docker build --network host`.
#
# Few layers on purpose: with the vfs storage driver of the test engine every
# layer is a full copy of the filesystem.
ARG BASE=local/debian-python:bookworm
FROM ${BASE}

# 0. Debian packages the plugin runs beyond the base system (scripts/base-image):
#    restic, the engine of off-site backup targets (plugin/offsite/).
RUN apt-get update -q \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends restic \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
    && restic version

# 1. The dependencies alone, listed by requirements.txt when the repo has one,
#    else by [project] dependencies in pyproject.toml, else by install_requires
#    in setup.cfg. This layer depends on those files only: a change under
#    plugin/ does not reinstall the dependencies. (The globs let any of the
#    files be missing.)
COPY setup.cf[g] pyproject.tom[l] requirements.tx[t] /src/
RUN set -eu; cd /src; \
    if [ -f requirements.txt ]; then \
        cp requirements.txt /tmp/requirements.txt; \
    else \
        python3 -c 'import configparser, os, tomllib; \
deps = tomllib.load(open("pyproject.toml", "rb")).get("project", {}).get("dependencies") if os.path.exists("pyproject.toml") else None; \
cfg = configparser.ConfigParser(); cfg.read("setup.cfg"); \
deps = deps if deps is not None else cfg.get("options", "install_requires", fallback="").splitlines(); \
print("\n".join(d.strip() for d in deps if d.strip() and not d.strip().startswith("#")))' \
            >/tmp/requirements.txt; \
    fi; \
    echo "dependencies:"; cat /tmp/requirements.txt; \
    if [ -s /tmp/requirements.txt ]; then \
        pip install --no-cache-dir --break-system-packages --disable-pip-version-check \
            -r /tmp/requirements.txt; \
    fi; \
    rm -f /tmp/requirements.txt

# 2. The code (whatever .dockerignore lets through; the packaging files and
#    plugin/ are what matter), installed without touching the dependencies.
#    A single COPY of everything: the classic builder can fail with "layer does
#    not exist" on a COPY whose layer repeats an earlier one, as a second COPY
#    of setup.cfg alone would. pip needs setup.py or pyproject.toml: a tree
#    with setup.cfg only gets a shim setup.py.
COPY . /src/
RUN cd /src \
    && if [ ! -f setup.py ] && [ ! -f pyproject.toml ]; then \
        echo 'from setuptools import setup; setup()' >setup.py; \
    fi \
    && pip install --no-cache-dir --break-system-packages --disable-pip-version-check \
        --no-deps /src \
    && cd / && python3 -c 'import plugin' \
    && mkdir -p /run/docker/plugins /mnt/volumes
