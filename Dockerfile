# impala-mu with CUDA PyTorch, Ray and DeepMind Lab (built from source at a pinned commit).
#   docker build -t impala-mu .
#   docker run --gpus all --shm-size=16g impala-mu python launch.py train --config configs/dmlab30.yaml
# The same image serves the Ray head node (learner + GPU) and the CPU worker nodes (actors).

ARG CUDA_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

# ---------------------------------------------------------------- DeepMind Lab build stage
FROM ubuntu:22.04 AS dmlab
ARG LAB_COMMIT=052fb801fda0193e3214c8ebeba7b03f0205aed2
ARG BAZEL_VERSION=5.4.1
ENV DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Build dependencies listed in DeepMind Lab's docs/users/build.md (Debian/Ubuntu).
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential ca-certificates curl git gettext libffi-dev libglu1-mesa-dev \
        libjpeg-dev libosmesa6-dev libsdl2-dev lua5.1 liblua5.1-0-dev pkg-config \
        python3-dev python3-numpy python3-pip python3-setuptools python3-wheel \
        unzip zip zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSL -o /usr/local/bin/bazel \
        "https://github.com/bazelbuild/bazel/releases/download/${BAZEL_VERSION}/bazel-${BAZEL_VERSION}-linux-x86_64" \
    && chmod +x /usr/local/bin/bazel
WORKDIR /src
RUN git clone https://github.com/google-deepmind/lab.git \
    && git -C lab checkout "${LAB_COMMIT}"
WORKDIR /src/lab
# Upstream's bazel/python.BUILD names python3.8's headers; point it at this image's Python
# (its /usr/include/python3.X/numpy link brings NumPy's headers along), then build as build.md says.
RUN PYVER="$(python3 -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')" \
    && sed -i "s/python3\.8/${PYVER}/g" bazel/python.BUILD \
    && echo 'build --cxxopt=-std=c++17' > .bazelrc \
    && bazel build -c opt --define headless=osmesa //python/pip_package:build_pip_package \
    && ./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg

# ---------------------------------------------------------------- runtime image
FROM ${CUDA_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update && apt-get install -y --no-install-recommends \
        libosmesa6 libsdl2-2.0-0 libglu1-mesa python3 python3-pip python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=dmlab /tmp/dmlab_pkg /tmp/dmlab_pkg
# DeepMind Lab's module is compiled against Ubuntu's NumPy 1.x C API: keep NumPy below 2 here.
RUN pip3 install --no-cache-dir torch==2.5.1 --index-url https://download.pytorch.org/whl/cu124 \
    && pip3 install --no-cache-dir "numpy<2" /tmp/dmlab_pkg/*.whl \
    && rm -rf /tmp/dmlab_pkg
WORKDIR /opt/impala-mu
COPY pyproject.toml README.md launch.py ./
COPY agent agent
COPY envs envs
COPY learner learner
COPY actors actors
COPY configs configs
RUN pip3 install --no-cache-dir -e . \
    && python3 -c "import deepmind_lab, torch, ray, envs, agent, learner, actors"
CMD ["python3", "launch.py", "train", "--config", "configs/dmlab30.yaml"]
