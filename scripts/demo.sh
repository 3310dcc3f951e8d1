#!/usr/bin/env bash
# The demo: index sample_data/ and query it with text, an image, a sound clip and Chinese
# text, then its mixed-language copy (sample_data/zh/) with a Chinese query.
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
# a Chinese query on the English shop: its values are found by meaning (red, Mugs)
mmsearch query "红色杯子" -k 3 --explain
# the mixed-language shop: Chinese text picks the multilingual model and the CJK analyzer
mmsearch ingest sample_data/zh/products.csv --media-dir sample_data --store "$MMSEARCH_STORE-zh"
mmsearch embed --store "$MMSEARCH_STORE-zh"
mmsearch index --store "$MMSEARCH_STORE-zh"
mmsearch query "咖啡杯" -k 5 --store "$MMSEARCH_STORE-zh"
set +x
echo "Next: open eval-report/index.html, or run '.venv/bin/mmsearch serve' and open http://127.0.0.1:8765"
