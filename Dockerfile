# One image for every kubelite component. The base is a build argument: a stock
# Python image for users with a registry, or the Debian base that
# scripts/build-images makes with debootstrap on machines without one.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# The proxy needs `ip` (it holds ClusterIPs as addresses) and docker-compose runs Redis
# from this image. The debootstrap base has both; a stock python image gets them here.
RUN if ! command -v ip >/dev/null || ! command -v redis-server >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends iproute2 redis-server \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# Dependencies come from a wheelhouse built on the host (scripts/build-images),
# so building needs no network.
COPY build/wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/kubelite \
 && /opt/kubelite/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheelhouse 'kubelite[docker]' \
 && rm -rf /tmp/wheelhouse
ENV PATH=/opt/kubelite/bin:$PATH PYTHONUNBUFFERED=1
WORKDIR /opt/kubelite
CMD ["kubelite", "--help"]
