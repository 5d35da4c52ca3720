#!/usr/bin/env bash
# Side by side: tasker bench at two revisions, interleaved.
#
#   bench/sbs.sh REV_A REV_B ROUNDS [tasker bench flags...]
#
# Builds cmd/tasker at each revision (git archive into a temporary
# directory, so the working tree is left alone; a revision is resolved to
# its commit once, at the start), then runs `tasker bench FLAGS` ROUNDS
# times with each binary, alternating: A first in odd rounds, B first in
# even ones, so that a drift of the machine's load falls on both. Each
# output line is prefixed with its revision and round.
set -euo pipefail
if [ $# -lt 3 ]; then
	echo "usage: $0 REV_A REV_B ROUNDS [tasker bench flags...]" >&2
	exit 2
fi
a=$1 b=$2 rounds=$3
shift 3
case $rounds in '' | *[!0-9]*) echo "$0: ROUNDS must be a whole number, got '$rounds'" >&2; exit 2 ;; esac
rounds=$((10#$rounds))
if ((rounds < 1)); then
	echo "$0: ROUNDS must be at least 1" >&2
	exit 2
fi
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A bin
for rev in "$a" "$b"; do
	sha=$(git -C "$repo" rev-parse --verify --quiet "$rev^{commit}") || { echo "$0: no commit '$rev' in $repo" >&2; exit 2; }
	if [ -z "${bin[$rev]:-}" ]; then
		mkdir -p "$work/src-$sha"
		git -C "$repo" archive "$sha" | tar -x -C "$work/src-$sha"
		(cd "$work/src-$sha" && go build -o "$work/tasker-$sha" ./cmd/tasker)
		bin[$rev]=$work/tasker-$sha
	fi
done
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then order=("$a" "$b"); else order=("$b" "$a"); fi
	for rev in "${order[@]}"; do
		"${bin[$rev]}" bench "$@" 2>&1 | awk -v p="$rev r$r  " '{ print p $0 }'
	done
done
