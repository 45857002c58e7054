#!/usr/bin/env bash
# Generates an image through a ChunkRelay gateway with curl only: creates a retrieve-mode job, follows
# its events until the image is ready, fetches it once, and checks its SHA-256 with sha256sum.
#
#   samples/shell/generate.sh SERVER OUTFILE [KEY=VALUE ...]
#   samples/shell/generate.sh http://127.0.0.1:8080 map.png width=512 height=384 seed=3
#
# Exits non-zero when the job fails, the download breaks or the digest does not match (and then
# leaves no OUTFILE behind).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SERVER OUTFILE [KEY=VALUE ...]" >&2
    exit 2
fi
server="${1%/}"
out="$2"
shift 2
function="${FUNCTION:-map-render}"

# Parameters as JSON: numbers stay numbers, anything else becomes a string.
params=""
for pair in "$@"; do
    key="${pair%%=*}"
    value="${pair#*=}"
    if [[ "$value" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then json="$value"; else json="\"${value//\"/\\\"}\""; fi
    params="${params:+$params,}\"$key\":$json"
done

created=$(curl -sS --fail-with-body -X POST "$server/v1/jobs" -H 'content-type: application/json' \
    -d "{\"function\":\"$function\",\"params\":{$params},\"delivery\":\"retrieve\"}")
# The fields this needs, without a JSON tool: "id":"…" and "events":"…".
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$2"; }
id=$(field id "$created")
events=$(field events "$created")
echo "job $id created"

# Follows the event stream until its final event; curl -N shows each event as it arrives.
final=""
while IFS= read -r line; do
    case "$line" in
        "event: "*) event="${line#event: }" ;;
        "data: "*)
            data="${line#data: }"
            case "$event" in
                queued) echo "queued: $data" ;;
                started) echo "started: $data" ;;
                progress) echo "progress: $data" ;;
                ready | done | failed) final="$event"; payload="$data"; break ;;
            esac
            ;;
    esac
done < <(curl -sS -N "$server$events")

if [ "$final" != ready ]; then
    echo "the job ended with ${final:-no final event}: ${payload:-}" >&2
    exit 1
fi
image=$(field image "$payload")
sha256=$(field sha256 "$payload")
echo "ready: $image, sha256 $sha256"

# The one-shot download, to a temporary name: the file appears only once its digest matched.
partial="$out.partial"
trap 'rm -f "$partial"' EXIT
curl -sS --fail-with-body -o "$partial" "$server$image"
actual=$(sha256sum "$partial" | cut -d' ' -f1)
if [ "$actual" != "$sha256" ]; then
    echo "sha256 mismatch: got $actual, the gateway announced $sha256" >&2
    exit 1
fi
mv "$partial" "$out"
echo "wrote $out: $(wc -c <"$out") bytes, sha256 $actual verified"
