#!/usr/bin/env bash
# The README's code examples are compiled and run as tests; this checks that the README still
# shows exactly the code those tests compile. Every region between a pair of `// [readme-NAME]`
# markers in a test source must appear verbatim in README.md.
set -euo pipefail
root=$1
readme="$root/README.md"
failed=0
checked=0
while IFS= read -r file; do
  for name in $(grep -o '// \[readme-[a-z-]*\]' "$file" | sort -u | sed 's,// \[\(.*\)\],\1,'); do
    snippet=$(awk -v m="// [$name]" 'index($0, m) == 1 { inside = !inside; next } inside' "$file")
    checked=$((checked + 1))
    if ! python3 - "$readme" "$snippet" <<'PY'
import sys
readme = open(sys.argv[1]).read()
sys.exit(0 if sys.argv[2].strip("\n") in readme else 1)
PY
    then
      echo "README.md does not show ${file#$root/}'s [$name] region verbatim" >&2
      failed=$((failed + 1))
    fi
  done
done < <(grep -rl '// \[readme-' "$root/src" "$root/tests" --include='*.cc')
echo "readme snippets: $checked checked, $failed differ"
[ "$checked" -gt 0 ] && [ "$failed" -eq 0 ]
