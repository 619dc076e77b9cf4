# impala-mu with CUDA PyTorch, Ray and DeepMind Lab built from pinned sources.
#   docker build -t impala-mu .
#   docker run --gpus all --shm-size=16g impala-mu python launch.py train --config configs/dmlab30.yaml \
#       env.options.dataset_path=/data/psychlab          # with -v /host/brady_konkle_oliva:/data/psychlab
# The same image serves the Ray head node (learner + GPU) and the CPU worker nodes (actors).
# Base: Debian 12 (bookworm), the distribution CI builds and tests DeepMind Lab on. Every RUN step
# is a script under scripts/ that tests/test_docker_steps.py also runs natively (see docs/DMLAB.md).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
# Optional: a PyTorch wheel index for another CUDA build (default: PyPI's torch, a CUDA build).
ARG TORCH_INDEX_URL=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/impala-mu
COPY scripts scripts
RUN scripts/image/apt_install.sh scripts/dmlab/apt-build.txt
COPY pyproject.toml README.md launch.py ./
COPY agent agent
COPY envs envs
COPY learner learner
COPY actors actors
COPY configs configs
COPY evaluation evaluation
COPY analysis analysis
RUN scripts/image/python_env.sh /opt/venv "${TORCH_INDEX_URL}"
# DeepMind Lab from the complete upstream archives at the pinned commits (checked against the
# pinned content hashes), built against the venv's numpy; the wheel goes into /opt/venv.
RUN IMPALA_MU_CACHE=/tmp/impala-mu-cache scripts/build_dmlab.sh --online --python /opt/venv/bin/python \
    && rm -rf /tmp/impala-mu-cache

# ---------------------------------------------------------------- runtime image
FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /opt/impala-mu
COPY scripts scripts
RUN scripts/image/apt_install.sh scripts/dmlab/apt-runtime.txt
COPY --from=build /opt/venv /opt/venv
COPY pyproject.toml README.md launch.py ./
COPY agent agent
COPY envs envs
COPY learner learner
COPY actors actors
COPY configs configs
COPY evaluation evaluation
COPY analysis analysis
RUN scripts/image/check.sh /opt/venv/bin/python
# The psychlab levels that need the Brady-Konkle-Oliva dataset read it from a volume mounted
# here and passed as env.options.dataset_path=/data/psychlab (launch.py refuses them otherwise).
VOLUME ["/data/psychlab"]
CMD ["python", "launch.py", "train", "--config", "configs/dmlab30.yaml"]
