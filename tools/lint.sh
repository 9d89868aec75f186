#!/bin/sh
#
# House-style checks for the C sources: 80 columns, no tabs, no "//"
# comments, no trailing spaces; then cppcheck.

cd "$(dirname "$0")/.." || exit 1

files="ngx_http_apikey_module/*.c ngx_http_apikey_module/*.h
       tools/apikeyctl/*.c tools/apikeyctl/*.h t/unit/*.c"
rc=0

for f in $files; do
    [ -f "$f" ] || continue

    awk -v f="$f" '
        length($0) > 80 { printf "%s:%d: longer than 80 columns\n", f, NR; e=1 }
        /\t/            { printf "%s:%d: tab\n", f, NR; e=1 }
        /[ ]+$/         { printf "%s:%d: trailing space\n", f, NR; e=1 }
        /^[^"]*\/\//    { printf "%s:%d: // comment\n", f, NR; e=1 }
        END { exit e }
    ' "$f" || rc=1
done

if command -v cppcheck >/dev/null 2>&1; then
    cppcheck --quiet --error-exitcode=1 --std=c99 \
        --enable=warning,portability \
        --suppress=missingIncludeSystem \
        -I ngx_http_apikey_module -I tools/apikeyctl \
        ngx_http_apikey_module/apikey_core.c tools/apikeyctl/*.c || rc=1
else
    echo "lint: cppcheck not installed, skipped" >&2
fi

[ $rc -eq 0 ] && echo "lint: ok"
exit $rc
