#!/usr/bin/env bash
# Records whole learning curves and costs for bench_replay.py: a random-sampler search with
# pruning off on bench_quality.py's split (run `python bench/bench_quality.py --arm seed` once
# to make it), in the background at the lowest priority. Run it again to go on: the study
# resumes where it stopped (an interrupted draw is marked failed and drawn anew, an interrupted
# queued perturbation queued again).
# Then: python bench/bench_replay.py --export sqlite:///bench/results/curves/curves.db \
#   curves-4ca3ebab2526 --add
# --add puts the study's trials beside those bench/data/curves.json already holds (commit it:
# the database stays on the machine). On a machine without the database, draw other trials
# under another name and sampler stream, on the same validation split (--seed would change
# it): bench/record_curves.sh --worker-index 1 --no-priors --study curves-4ca3ebab2526-w1, and
# export that study with --add (a later machine: --worker-index 2, -w2, and so on). Trials
# queued in the study run first: bench/record_local.py queues perturbations of the best prior
# there (draws near what works).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/results/curves
exec nice -n 19 python -m search.run \
  --data bench/results/quality/split-4ca3ebab2526/data \
  --study curves-4ca3ebab2526 --storage sqlite:///bench/results/curves/curves.db \
  --sampler random --pruner none --seed 0 --trials 120 --max-epochs 12 \
  --max-trial-minutes 60 --no-progress --no-report "$@"
