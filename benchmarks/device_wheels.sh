#!/usr/bin/env bash
# Wheels a bare GPU machine lacks for gpu_speed.sh, fetched here into .whl/ (git-ignored through
# .git/info/exclude) so they can travel with the working tree. The machine this project borrows has
# torch, transformers, huggingface_hub, safetensors, OpenCV and the rest, but not diffusers.
#     bash benchmarks/device_wheels.sh      # then see benchmarks/README.md, "On a lent device machine"
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >>.git/info/exclude
diffusers=$(grep -i '^diffusers==' constraints.txt)  # the version CI last passed with
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl "$diffusers" importlib_metadata
ls .whl
