# The ingress image for the kind platform: nginx and mtail (the edge exporter), the same programs
# and configuration as the local platform. The run's ConfigMap supplies nginx.conf, the mtail
# program and the no-endpoints seed of the upstreams file, which an init container copies (`cp`)
# into an emptyDir at /var/lib/brownout; the harness then writes the pods' addresses there by exec
# (`sh`, `printf`, `mv`, then `nginx -s reload`, which reads the pid file /tmp/nginx.pid): the
# image runs as root and needs those programs (Debian's base has them). `nginx` (not nginx-light)
# exists in Debian and Ubuntu alike, so BASE may be either (match the build host's glibc). Build
# from the repository root:
#   docker build -f kind-config/ingress.Dockerfile -t brownout/ingress:dev .
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx mtail \
    && rm -rf /var/lib/apt/lists/*
