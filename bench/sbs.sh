#!/usr/bin/env bash
# Side by side: tasker bench at two or more revisions, interleaved.
#
#   bench/sbs.sh REV_A REV_B ROUNDS [tasker bench flags...]
#   bench/sbs.sh REV_A,REV_B,REV_C,... ROUNDS [tasker bench flags...]
#
# Builds cmd/tasker at each revision (git archive into a temporary
# directory, so the working tree is left alone; a revision is resolved to
# its commit once, at the start), then runs `tasker bench FLAGS` ROUNDS
# times with each binary, taking turns: with two revisions A goes first in
# odd rounds and B in even ones; with a list, round r starts at the r-th
# revision (rotating), so that a drift of the machine's load falls on all
# (evenly when ROUNDS is a multiple of the revisions). A first revision
# whose name has a comma is read as a list: give its commit instead. Each
# output line is prefixed with its revision and round.
set -euo pipefail
usage() {
	echo "usage: $0 REV_A REV_B ROUNDS [tasker bench flags...]" >&2
	echo "       $0 REV_A,REV_B[,REV_C...] ROUNDS [tasker bench flags...]" >&2
	exit 2
}
if [[ ${1:-} == *,* ]]; then
	[ $# -ge 2 ] || usage
	IFS=, read -r -a revs <<<"${1// /}"
	rounds=$2
	shift 2
else
	[ $# -ge 3 ] || usage
	revs=("$1" "$2")
	rounds=$3
	shift 3
fi
case $rounds in '' | *[!0-9]*) echo "$0: ROUNDS must be a whole number, got '$rounds'" >&2; exit 2 ;; esac
rounds=$((10#$rounds))
if ((rounds < 1)); then
	echo "$0: ROUNDS must be at least 1" >&2
	exit 2
fi
for rev in "${revs[@]}"; do
	[ -n "$rev" ] || { echo "$0: an empty revision in the list" >&2; exit 2; }
done
if ((${#revs[@]} < 2)); then
	echo "$0: give at least two revisions to compare" >&2
	exit 2
fi
repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
declare -A bin
for rev in "${revs[@]}"; do
	sha=$(git -C "$repo" rev-parse --verify --quiet "$rev^{commit}") || { echo "$0: no commit '$rev' in $repo" >&2; exit 2; }
	if [ -z "${bin[$rev]:-}" ]; then
		mkdir -p "$work/src-$sha"
		git -C "$repo" archive "$sha" | tar -x -C "$work/src-$sha"
		(cd "$work/src-$sha" && go build -o "$work/tasker-$sha" ./cmd/tasker)
		bin[$rev]=$work/tasker-$sha
	fi
done
n=${#revs[@]}
for ((r = 1; r <= rounds; r++)); do
	# Two revisions: A first in odd rounds (r - 1 = 0, 2, ...), as before.
	for ((k = 0; k < n; k++)); do
		rev=${revs[$(((k + r - 1) % n))]}
		"${bin[$rev]}" bench "$@" 2>&1 | awk -v p="$rev r$r  " '{ print p $0 }'
	done
done
