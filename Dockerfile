# impala-mu with PyTorch, Ray and DeepMind Lab built from pinned sources.
#   docker build -t impala-mu .
#   docker run --gpus all --shm-size=16g impala-mu python launch.py train --config configs/dmlab30.yaml \
#       env.options.dataset_path=/data/psychlab          # with -v /host/brady_konkle_oliva:/data/psychlab
# The same image serves the Ray head node (learner + GPU) and the CPU worker nodes (actors).
# Base: Debian 12 (bookworm), the distribution CI builds and tests DeepMind Lab on. Every RUN step
# is a script under scripts/ that tests/test_docker_steps.py also runs natively; the whole build is
# run and its image tested by scripts/image/build_local.sh (docs/DOCKER.md).
#
# Build arguments (all optional; docs/DOCKER.md):
#   BASE_IMAGE       any Debian 12 image: python:3.11-slim-bookworm (default) or a bare Debian
#                    (Debian's python3 is installed then, as in scripts/image/build_local.sh)
#   TORCH_INDEX_URL  a PyTorch wheel index (default: PyPI, whose Linux x86_64 torch is the CUDA build)
#   TORCH_WHEEL      a torch wheel under image-inputs/ (e.g. wheels/torch-2.13.0+cpu-...whl): a CPU
#                    build, or any torch without network; its version must be the one CI tests
# DeepMind Lab: from the pinned archives when image-inputs/dmlab-sources/ holds them (offline),
# else downloaded at the same pinned commits (online). Optional secret `ca`: a CA bundle for pip and
# curl behind a TLS-intercepting proxy (`--secret id=ca,src=/etc/ssl/certs/ca-certificates.crt`),
# used by the steps that download, never stored in the image.

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=""
ARG TORCH_WHEEL=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/impala-mu
COPY scripts scripts
RUN scripts/image/apt_install.sh scripts/dmlab/apt-build.txt --python build
COPY pyproject.toml ./
# torch and the project's dependencies first: the DeepMind Lab build below depends only on them, on
# scripts/ and on pyproject.toml, so editing the project's code or README does not rebuild it.
RUN --mount=type=secret,id=ca --mount=type=bind,source=image-inputs,target=/image-inputs \
    scripts/image/with_ca.sh scripts/image/python_env.sh /opt/venv "${TORCH_INDEX_URL}" "${TORCH_WHEEL}"
# DeepMind Lab built against the venv's numpy; the wheel goes into /opt/venv. Its own step, so a
# failed DeepMind Lab build reruns without reinstalling torch (hence DL3059 ignored).
# hadolint ignore=DL3059
RUN --mount=type=secret,id=ca --mount=type=bind,source=image-inputs,target=/image-inputs \
    scripts/image/with_ca.sh scripts/image/dmlab.sh /opt/venv/bin/python /image-inputs/dmlab-sources
COPY README.md launch.py ./
COPY agent agent
COPY envs envs
COPY learner learner
COPY actors actors
COPY configs configs
COPY evaluation evaluation
COPY analysis analysis
COPY training training
RUN --mount=type=secret,id=ca scripts/image/with_ca.sh scripts/image/install_project.sh /opt/venv

# ---------------------------------------------------------------- runtime image
FROM ${BASE_IMAGE}
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/impala-mu
COPY scripts scripts
RUN scripts/image/apt_install.sh scripts/dmlab/apt-runtime.txt --python run
COPY --from=build /opt/venv /opt/venv
COPY pyproject.toml README.md launch.py ./
COPY agent agent
COPY envs envs
COPY learner learner
COPY actors actors
COPY configs configs
COPY evaluation evaluation
COPY analysis analysis
COPY training training
RUN scripts/image/check.sh /opt/venv/bin/python
# The psychlab levels that need the Brady-Konkle-Oliva dataset read it from a volume mounted
# here and passed as env.options.dataset_path=/data/psychlab (launch.py refuses them otherwise).
VOLUME ["/data/psychlab"]
CMD ["python", "launch.py", "train", "--config", "configs/dmlab30.yaml"]
