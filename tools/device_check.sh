#!/usr/bin/env bash
# The GPU check behind docs/benchmarks.md: GPU-marked tests, then the whole suite on CUDA with
# timings (first run = extraction, second run = cache only), and `xrbench bench` for xr0 and resnet10t.
# Paste $OUT/device_log.txt's figures into docs/benchmarks.md with the machine's name. Run from the repository root on a
# CUDA machine; wheels for packages that machine lacks may be carried in .whl/ (see docs/benchmarks.md).
set -uo pipefail
OUT=${OUT:-/tmp/xrbench-device}; mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export XRBENCH_HOME=/tmp/xrh
log() { echo "== $*"; }
{
log machine
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "cpus: $(nproc)"
python3 -c "import torch, timm, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, torch.cuda.get_device_name())"

log "pytest -m gpu"
python3 -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tail -5

log "demo data generation (8 datasets of the 'all' suite, 8 processes)"
/usr/bin/time -f "demo generation: %e s wall" python3 - <<'PY'
from multiprocessing import Pool
import xrbench.data.datasets  # noqa
from xrbench.data.demo import demo_root
names = ["chexpert", "nih-cxr14", "vindr-cxr", "mura", "rsna-boneage", "vindr-spinexr", "fracatlas", "knee-oa"]
with Pool(8) as p:
    print(p.map(demo_root, names))
PY

for model in xr0 efficientnet-lite0-imagenet; do
  log "run $model --task all --device cuda (first run: extraction)"
  /usr/bin/time -f "$model first run: %e s wall" python3 -m xrbench.cli run --model $model --task all --device cuda \
      --output /tmp/res --workers 8 --batch-size 64 2>&1 | grep -v "^\[xrbench\] [a-z]" | tail -16
  log "run $model --task all --device cuda (second run: cached features)"
  /usr/bin/time -f "$model second run: %e s wall" python3 -m xrbench.cli run --model $model --task all --device cuda \
      --output /tmp/res2 --workers 8 --batch-size 64 2>&1 >/dev/null | grep "second run"
done
python3 - <<'PY'
import glob, json
for f in sorted(glob.glob("/tmp/res/*/*/seed0.json")):  # first runs
    r = json.load(open(f))
    print(f"{r['model']:28s} {r['task']:20s} extract {r['timings']['extract_s']:7.2f} s  fit {r['timings']['fit_s']:6.2f} s  total {r['timings']['total_s']:6.2f} s  device {r['provenance']['device']}")
PY

log "xrbench bench (forward / decode / end to end, with and without the pixel cache)"
for m in xr0 timm:resnet10t; do
  python3 -m xrbench.cli bench --model $m --device cuda --batch-size 256 --json > "$OUT/bench_${m//:/_}.json" 2>/dev/null \
    && python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], r['rates_img_s'], r['ratios'])" "$OUT/bench_${m//:/_}.json" $m
done

log "raw extraction throughput (ViT-B/16 xr0, bf16 autocast, synthetic batch)"
python3 - <<'PY'
import time, torch
from xrbench.models import create_encoder
enc = create_encoder("xr0").cuda().eval()
x = torch.randn(256, 3, 224, 224, device="cuda")
for bs in (64, 256):
    with torch.autocast("cuda", dtype=torch.bfloat16):
        enc.encode(x[:bs]); torch.cuda.synchronize(); t = time.perf_counter()
        for _ in range(10): enc.encode(x[:bs])
        torch.cuda.synchronize()
    print(f"batch {bs}: {10 * bs / (time.perf_counter() - t):.0f} img/s")
PY

log "make bench, torch probe only (50,000 x 768, 14 labels): CPU threads of this machine and CUDA"
python3 -m pytest -q -p no:cacheprovider tests/benchmarks/test_bench_linear_probe.py -k torch --benchmark-enable \
    --benchmark-only --benchmark-columns=min,mean,rounds 2>&1 | grep -E "test_|passed|failed"
} 2>&1 | tee "$OUT/device_log.txt"
cp /tmp/res/leaderboard.csv "$OUT/leaderboard_cuda.csv" 2>/dev/null
tar czf "$OUT/results_cuda.tgz" -C /tmp res 2>/dev/null
exit 0
