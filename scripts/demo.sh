#!/usr/bin/env bash
# The demo: index sample_data/ and query it with text, an image and a sound clip.
# Re-running is cheap: ingest, embed and index only do what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export MMSEARCH_STORE="${MMSEARCH_STORE:-mmsearch-store}"
set -x
mmsearch ingest sample_data/products.csv
mmsearch embed
mmsearch index
mmsearch query "red coffee mug" -k 5
mmsearch query --image sample_data/queries/q_p007.png -k 5
mmsearch query --audio sample_data/queries/q_p025.wav -k 5
mmsearch eval --queries sample_data/queries.csv --qrels sample_data/qrels.csv -k 10 -k 1 --report eval-report
set +x
echo "Next: open eval-report/index.html, or run '.venv/bin/mmsearch serve' and open http://127.0.0.1:8765"
