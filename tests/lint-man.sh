#!/usr/bin/env bash
# Lints every manual page: mandoc's checker (warnings and worse) and
# groff with all warnings on. Any message fails the test, naming the page:
# a page that renders words run together or a stray quote usually shows up
# here first. Also catches the two rendering slips seen before: a bold
# argument list that runs into the next words, and a quoted separator
# printed without its space.
#
#   tests/lint-man.sh PAGE...
set -uo pipefail
status=0
for page in "$@"; do
  if command -v mandoc >/dev/null; then
    out=$(mandoc -T lint -W warning "$page" 2>&1)
    if [ -n "$out" ]; then
      echo "$out"
      status=1
    fi
  else
    echo "mandoc is missing (Debian package mandoc)"
    status=1
  fi
  out=$(groff -t -man -ww -z "$page" 2>&1)
  if [ -n "$out" ]; then
    echo "$page: groff: $out"
    status=1
  fi
  # .RB/.BR take one word per argument: more than two arguments, or
  # prose after a closing quote, alternate fonts without spaces.
  out=$(grep -nE '^\.(RB|BR|IR|RI|BI|IB) .*\\\(rq\) [a-z]' "$page")
  if [ -n "$out" ]; then
    echo "$page: text runs into an alternating-font macro: $out"
    status=1
  fi
  # A ", " separator quoted with the space lost: "," standing alone.
  out=$(groff -t -man -Tutf8 -P-cbou "$page" 2>/dev/null |
        grep -nE '(^|[[:space:]])","([[:space:]]|$)')
  if [ -n "$out" ]; then
    echo "$page: a quoted separator lost its space: $out"
    status=1
  fi
done
exit $status
