# The ingress image for the kind platform: nginx and mtail (the edge exporter), the same programs
# and configuration as the local platform. The run's ConfigMap supplies nginx.conf, the upstream
# block (the routed Service) and the mtail program. Build from the repository root:
#   docker build -f kind-config/ingress.Dockerfile -t brownout/ingress:dev .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx-light mtail \
    && rm -rf /var/lib/apt/lists/*
