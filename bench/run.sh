#!/bin/bash
#
# make bench: ngx_http_apikey_module against bare nginx and the other ways
# of checking a key, side by side in one run, one nginx worker each, on
# 127.0.0.1.  Writes bench/results/ (results.md, raw .tsv/.dat, PNG
# charts) and prints the tables.
#
# usage: bench/run.sh [--quick] [--prepare] [--cg]
#
#   --prepare only build and make the key sets (cached), measure nothing
#   --quick   1,000 and 100,000 keys instead of 1M and 10M, one short wrk
#             round, small callgrind counts (under two minutes)
#   --cg      only the instructions per request of bare nginx and of
#             apikey at 1M keys, with the profile (make bench-cg, a few
#             minutes): the figure to check a change of the request path
#
# Environment: NGINX_BIN (default /usr/sbin/nginx), BENCH_NO_BUILD=1 (use
# build/ as it is), BENCH_WRK_ROUNDS,
# BENCH_WRK_SECONDS, BENCH_REBUILD=1 (regenerate the cached key sets and
# databases under build/bench/data).

set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BENCH=$ROOT/bench
B=$ROOT/build
W=$B/bench
NGINX=${NGINX_BIN:-/usr/sbin/nginx}
export -n NGINX    # nginx itself reads NGINX (inherited sockets)
APIKEYCTL=$B/apikeyctl
MODULE=$B/ngx_http_apikey_module.so
LUA_DIR=/usr/lib/nginx/modules
T0=$(date +%s)

QUICK=0 PREPARE=0 CG_ONLY=0
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=1 ;;
    --prepare) PREPARE=1 ;;
    --cg) CG_ONLY=1 ;;
    *) echo "usage: bench/run.sh [--quick] [--prepare] [--cg]" >&2; exit 2 ;;
    esac
done

if [ $CG_ONLY = 1 ]; then
    MODE=cg
    SMALL= BIG=1000000 HUGE=
    ROUNDS=0 SECONDS_PER=0
    CG_COUNTS=2000,12000 CG_WARM=500
    RESULTS=$BENCH/results/cg
elif [ $QUICK = 1 ]; then
    MODE=quick
    SMALL=1000 BIG=100000 HUGE=
    ROUNDS=${BENCH_WRK_ROUNDS:-1} SECONDS_PER=${BENCH_WRK_SECONDS:-2}
    CG_COUNTS=500,2500 CG_WARM=100
    RESULTS=$BENCH/results/quick
else
    MODE=full
    SMALL=1000 BIG=1000000 HUGE=10000000
    ROUNDS=${BENCH_WRK_ROUNDS:-5} SECONDS_PER=${BENCH_WRK_SECONDS:-5}
    CG_COUNTS=2000,12000 CG_WARM=500
    RESULTS=$BENCH/results
fi
BASIC_USERS=100000

log() { printf '[bench %4ds] %s\n' $(( $(date +%s) - T0 )) "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# "1000" -> "1k", "1000000" -> "1M"
label() {
    local n=$1
    if [ $((n % 1000000)) = 0 ]; then echo "$((n / 1000000))M"
    elif [ $((n % 1000)) = 0 ]; then echo "$((n / 1000))k"
    else echo "$n"; fi
}


# --- what is needed --------------------------------------------------------

for t in wrk valgrind callgrind_control callgrind_annotate gnuplot mdb_load \
         mdb_dump perl curl
do
    command -v $t > /dev/null || die "$t is missing: run tools/deps.sh bench"
done
[ -x "$NGINX" ] || die "no nginx at $NGINX"

if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
    log "BENCH_NO_BUILD=1: using the module and apikeyctl as built"
else
    log "building the module and apikeyctl"
    make -s -C "$ROOT" build/ngx_http_apikey_module.so build/apikeyctl >&2
fi
[ -f "$MODULE" ] && [ -x "$APIKEYCTL" ] || die "no $MODULE or $APIKEYCTL"
# a copy, so that a rebuild during the run does not mix two versions
mkdir -p $W/bin
cp "$MODULE" "$APIKEYCTL" $W/bin/
MODULE=$W/bin/ngx_http_apikey_module.so
APIKEYCTL=$W/bin/apikeyctl

LUA=1 LUA_WHY=
if [ $CG_ONLY = 1 ]; then
    LUA=0 LUA_WHY="--cg measures nginx and apikey only"
elif [ ! -f $LUA_DIR/ngx_http_lua_module.so ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        log "installing libnginx-mod-http-lua (optional)"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                 libnginx-mod-http-lua > $B/bench-lua-install.log 2>&1
        then
            LUA=0 LUA_WHY="apt-get install libnginx-mod-http-lua failed (see build/bench-lua-install.log)"
        fi
    else
        LUA=0 LUA_WHY="libnginx-mod-http-lua is not installed (install it as root to include the Lua check)"
    fi
fi
if [ $LUA = 1 ] && [ ! -f $LUA_DIR/ngx_http_lua_module.so ]; then
    LUA=0 LUA_WHY="no $LUA_DIR/ngx_http_lua_module.so after installing"
fi
[ $LUA = 1 ] || log "skipping the Lua contender: $LUA_WHY"

if [ "$(id -u)" = 0 ]; then
    USER_LINE="user nobody nogroup;"
    INIT_USER="--user nobody"
else
    USER_LINE=
    INIT_USER=
fi

mkdir -p "$W" "$RESULTS"
rm -f "$RESULTS"/*.tsv "$RESULTS"/*.dat "$RESULTS"/*.png "$RESULTS"/*.txt \
      "$RESULTS"/results.md


# --- key sets, cached under build/bench/data/N ----------------------------

# A stamp records how a set was made; a change of the generator or of the
# database format rebuilds it.
FORMAT=$(awk '/define AKC_FORMAT_VERSION/ { print $3 }' \
             "$ROOT/ngx_http_apikey_module/apikey_core.h")
GEN_SUM=$(cksum < "$BENCH/genkeys.pl" | awk '{ print $1 }')

dataset() {
    local n=$1 d=$W/data/$1
    local stamp="genkeys $GEN_SUM format $FORMAT user ${INIT_USER:-none}"

    if [ "${BENCH_REBUILD:-0}" != 1 ] && [ -f $d/stamp ] \
       && [ "$(cat $d/stamp)" = "$stamp" ]
    then
        return
    fi

    log "key set $(label $n): generating $n keys"
    rm -rf $d
    mkdir -p $d
    perl "$BENCH/genkeys.pl" $n $d
    log "key set $(label $n): apikeyctl import"
    # shellcheck disable=SC2086
    "$APIKEYCTL" -d $d/db -s $d/secret init $INIT_USER > /dev/null
    local s=$(date +%s%N)
    "$APIKEYCTL" -d $d/db -s $d/secret import --format csv $d/keys.csv \
        > /dev/null
    local e=$(date +%s%N)
    echo $(( (e - s) / 1000000 )) > $d/import-ms
    chmod 0644 $d/keys.csv $d/keys.map
    echo "$stamp" > $d/stamp
}

SIZES="$SMALL $BIG $HUGE"
for n in $SIZES; do
    dataset $n
done

mkdir -p $W/data
if [ $CG_ONLY = 0 ]; then
    BASIC_1=$(perl "$BENCH/genkeys.pl" --htpasswd 1 $W/data/htpasswd.1)
    BASIC_N=$(perl "$BENCH/genkeys.pl" --htpasswd $BASIC_USERS \
                  $W/data/htpasswd.$BASIC_USERS)
    chmod 0644 $W/data/htpasswd.*
fi

if [ $PREPARE = 1 ]; then
    log "key sets ready under $W/data"
    exit 0
fi


# --- one nginx configuration per contender ---------------------------------

# conf NAME KIND N PORT MODE: writes build/bench/run/NAME/nginx-MODE.conf.
# MODE "wrk": master and one worker (daemon off, started in the
# background); "cg": a single process for callgrind.

conf() {
    local name=$1 kind=$2 n=$3 port=$4 mode=$5
    local p=$W/run/$name d=$W/data/$n
    local top="" http="" loc="" extra=""

    mkdir -p $p/logs $p/tmp
    chmod 0755 $p
    chmod 0777 $p/tmp

    case $kind in
    none)
        ;;
    apikey)
        top="load_module $MODULE;"
        http="apikey_db $d/db; apikey_secret $d/secret;"
        loc="apikey on;"
        ;;
    map)
        http="map_hash_max_size $((n + 1000)); map_hash_bucket_size 128;
        map \$http_x_api_key \$api_client {
            default \"\";
            include $d/keys.map;
        }"
        loc="if (\$api_client = \"\") { return 401; }"
        ;;
    basic)
        loc="auth_basic \"bench\"; auth_basic_user_file $W/data/htpasswd.$n;"
        ;;
    authreq)
        loc="auth_request /_auth;"
        extra="location = /_auth {
            internal;
            if (\$http_x_api_key != \"$(cat $W/data/$BIG/valid)\") {
                return 401;
            }
            return 204;
        }"
        ;;
    lua)
        top="load_module $LUA_DIR/ndk_http_module.so;
load_module $LUA_DIR/ngx_http_lua_module.so;"
        http="init_by_lua_block {
            bench_keys = {}
            for line in io.lines(\"$d/keys.csv\") do
                local k = string.match(line, \"^([^,]+),\")
                if k then bench_keys[k] = true end
            end
        }"
        loc="access_by_lua_block {
            local k = ngx.var.http_x_api_key
            if not k or not bench_keys[k] then
                return ngx.exit(401)
            end
        }"
        ;;
    esac

    local proc
    if [ $mode = cg ]; then
        proc="master_process off;"
    else
        proc="master_process on; $USER_LINE"
    fi

    cat > $p/nginx-$mode.conf << END
# bench/run.sh: contender $name ($kind, $n)
$top
$proc
daemon off;
worker_processes 1;
pid $p/nginx-$mode.pid;
error_log $p/logs/error.log warn;

events {
    worker_connections 1024;
}

http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;

    client_body_temp_path $p/tmp;
    proxy_temp_path $p/tmp;
    fastcgi_temp_path $p/tmp;
    uwsgi_temp_path $p/tmp;
    scgi_temp_path $p/tmp;

    $http

    server {
        listen 127.0.0.1:$port;

        location / {
            $loc
            empty_gif;
        }

        $extra
    }
}
END
}


# The contenders: NAME KIND N, and the headers of a valid and an unknown
# key (files under build/bench/run/NAME).

CONTENDERS=()
declare -A KIND COUNT PORT
add() {
    local name=$1
    CONTENDERS+=("$name")
    KIND[$name]=$2
    COUNT[$name]=$3
    PORT[$name]=$((18400 + ${#CONTENDERS[@]}))
    mkdir -p $W/run/$name
    printf '%s\n' "$4" > $W/run/$name/valid.hdr
    printf '%s\n' "$5" > $W/run/$name/unknown.hdr
    conf $name $2 $3 ${PORT[$name]} cg
    conf $name $2 $3 ${PORT[$name]} wrk
}

key_hdr() { echo "X-API-Key: $(cat $W/data/$1/$2)"; }

rm -rf $W/run
add none none 0 "$(key_hdr $BIG valid)" ""
for n in $SIZES; do
    add apikey-$(label $n) apikey $n "$(key_hdr $n valid)" \
        "$(key_hdr $n unknown)"
done
if [ $CG_ONLY = 0 ]; then
add map-$(label $BIG) map $BIG "$(key_hdr $BIG valid)" \
    "$(key_hdr $BIG unknown)"
add basic-1 basic 1 "Authorization: $BASIC_1" ""
add basic-$(label $BASIC_USERS) basic $BASIC_USERS \
    "Authorization: $BASIC_N" ""
add auth_request authreq $BIG "$(key_hdr $BIG valid)" \
    "$(key_hdr $BIG unknown)"
if [ $LUA = 1 ]; then
    add lua-$(label $BIG) lua $BIG "$(key_hdr $BIG valid)" \
        "$(key_hdr $BIG unknown)"
fi
fi

hdr() { cat $W/run/$1/$2.hdr; }


# --- processes this script starts are stopped on exit ----------------------

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM $pid 2> /dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait $pid 2> /dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# --- machine ---------------------------------------------------------------

DIRTY=$(git -C "$ROOT" status --porcelain 2> /dev/null | grep -v "^?? bench/" || true)
{
    echo "date	$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "mode	$MODE"
    echo "cpu	$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    echo "nproc	$(nproc)"
    echo "memory	$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    echo "kernel	$(uname -sr)"
    echo "nginx	$($NGINX -v 2>&1 | sed 's/^nginx version: //')"
    echo "commit	$(git -C "$ROOT" rev-parse --short HEAD 2> /dev/null || echo unknown)${DIRTY:+ (uncommitted changes)}"
    echo "module	$(sha256sum < "$MODULE" | cut -c1-12)"
    echo "valgrind	$(valgrind --version)"
    echo "wrk	$(wrk --version 2>&1 | awk 'NR == 1 { print $1, $2 }')"
    echo "lua	$([ $LUA = 1 ] && echo yes || echo "no: $LUA_WHY")"
    echo "sizes	$SIZES"
    echo "big	$BIG"
    echo "basic_users	$BASIC_USERS"
    echo "cg_counts	$CG_COUNTS"
    echo "wrk_desc	$ROUNDS rounds of ${SECONDS_PER} s, wrk -t1 -c16"
} > $RESULTS/machine.tsv


# --- instructions per request (callgrind) ----------------------------------

# cases of a contender: NAME=STATUS[=HEADER]
cg_cases() {
    local c=$1
    case ${KIND[$c]} in
    none)
        echo "valid=200=$(hdr $c valid)"
        echo "missing=200"
        ;;
    apikey|map)
        echo "valid=200=$(hdr $c valid)"
        echo "unknown=401=$(hdr $c unknown)"
        echo "missing=401"
        ;;
    lua)
        echo "valid=200=$(hdr $c valid)"
        echo "unknown=401=$(hdr $c unknown)"
        ;;
    *)
        echo "valid=200=$(hdr $c valid)"
        ;;
    esac
}

echo "contender	kind	keys	case	status	ir_per_request	ir_n1	ir_n2	n1	n2" \
    > $RESULTS/callgrind.tsv
for c in "${CONTENDERS[@]}"; do
    log "callgrind: $c"
    mapfile -t cases < <(cg_cases $c)
    rm -rf $W/cg/$c
    mkdir -p $W/cg
    # auth_basic reads and parses its user file up to the user on every
    # request: ~25M instructions with 100k users, so fewer requests
    counts=$CG_COUNTS warm=$CG_WARM
    if [ ${KIND[$c]} = basic ] && [ ${COUNT[$c]} -gt 1000 ]; then
        counts=10,50 warm=5
    fi
    perl "$BENCH/cgmeasure.pl" --prefix $W/run/$c \
        --conf $W/run/$c/nginx-cg.conf --port ${PORT[$c]} --out $W/cg/$c \
        --counts $counts --warm $warm --nginx "$NGINX" "${cases[@]}" \
        > $W/cg/$c.out
    while IFS=$'\t' read -r name st ipr ir1 ir2 n1 n2 d1 d2; do
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' $c ${KIND[$c]} \
            ${COUNT[$c]} $name $st $ipr $ir1 $ir2 $n1 $n2 \
            >> $RESULTS/callgrind.tsv
        if [ $c = apikey-$(label $BIG) ] && [ $name = valid ]; then
            PROFILE_DUMPS="$d1 $d2 $n1 $n2"
        fi
    done < $W/cg/$c.out
done

log "callgrind: per-function profile of apikey-$(label $BIG), valid key"
# shellcheck disable=SC2086
perl "$BENCH/profile.pl" $PROFILE_DUMPS 25 \
    > $RESULTS/profile-apikey-$(label $BIG)-valid.txt
callgrind_annotate --auto=no --inclusive=yes $(echo $PROFILE_DUMPS | cut -d' ' -f2) \
    > $W/cg/annotate.txt 2> /dev/null || true
sed -n 1,60p $W/cg/annotate.txt \
    > $RESULTS/callgrind-annotate-apikey-$(label $BIG)-valid.txt

if [ $CG_ONLY = 1 ]; then
    perl -F'\t' -lane '$b{"$F[0]/$F[3]"} = $F[5];
        END {
            printf "valid key at 1M keys: %.1f instructions per request, "
                . "+%.1f over bare nginx (%.1f)\n", $b{"apikey-1M/valid"},
                $b{"apikey-1M/valid"} - $b{"none/valid"}, $b{"none/valid"}
        }' $RESULTS/callgrind.tsv | tee $RESULTS/summary.txt
    column -t -s$'\t' $RESULTS/callgrind.tsv
    exit 0
fi


# --- throughput (wrk), all contenders at once, interleaved rounds ---------

log "wrk: starting ${#CONTENDERS[@]} nginx instances"
for c in "${CONTENDERS[@]}"; do
    "$NGINX" -p $W/run/$c -c $W/run/$c/nginx-wrk.conf \
        > $W/run/$c/logs/stdout.log 2>&1 &
    PIDS+=($!)
done
for c in "${CONTENDERS[@]}"; do
    perl -I"$BENCH/lib" -MBench -e \
        'exit(defined Bench::wait_port($ARGV[0], 600) ? 0 : 1)' ${PORT[$c]} \
        || die "nginx for $c did not start (see $W/run/$c/logs/)"
    # a check that the contender accepts the valid key and rejects others
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "$(hdr $c valid)" \
               http://127.0.0.1:${PORT[$c]}/)
    [ "$code" = 200 ] || die "$c: a valid key got $code"
    if [ ${KIND[$c]} != none ]; then
        code=$(curl -s -o /dev/null -w '%{http_code}' \
                   http://127.0.0.1:${PORT[$c]}/)
        [ "$code" = 401 ] || die "$c: a missing key got $code"
    fi
done

echo "round	contender	rps	p50_ms	p99_ms	non2xx" > $RESULTS/wrk.tsv
for round in $(seq 1 $ROUNDS); do
    # rotate the order so that no contender always runs first
    n=${#CONTENDERS[@]}
    for i in $(seq 0 $((n - 1))); do
        c=${CONTENDERS[$(( (i + round - 1) % n ))]}
        log "wrk: round $round/$ROUNDS, $c"
        out=$(wrk -t1 -c16 -d${SECONDS_PER}s --latency -H "$(hdr $c valid)" \
                  http://127.0.0.1:${PORT[$c]}/ 2>&1)
        echo "$out" | awk -v r=$round -v c=$c '
            function ms(v) {
                if (v ~ /us$/) return v / 1000
                if (v ~ /ms$/) return v + 0
                if (v ~ /s$/) return v * 1000
                return v
            }
            /Requests\/sec:/ { rps = $2 }
            /^ +50%/ { p50 = ms($2) }
            /^ +99%/ { p99 = ms($2) }
            /Non-2xx/ { bad = $NF }
            END { printf "%s\t%s\t%s\t%.3f\t%.3f\t%d\n", r, c, rps, p50, p99, bad }
        ' >> $RESULTS/wrk.tsv
    done
done
cleanup


# --- start-up time and worker memory against the key count ----------------

echo "kind	keys	run	startup_s	requests	private_kb	rss_kb	pss_kb	master_rss_kb" \
    > $RESULTS/startup.tsv
for kind in apikey map; do
    for n in $SIZES; do
        # the map at 10M keys: minutes and ~2.5 GB per start, once is enough
        runs=3
        [ $kind = map ] && [ $n -ge 10000000 ] && runs=1
        name=startup-$kind-$(label $n)
        conf $name $kind $n 18499 wrk
        log "start-up: $kind $(label $n) ($runs runs)"
        perl "$BENCH/startup.pl" --prefix $W/run/$name \
            --conf $W/run/$name/nginx-wrk.conf --port 18499 --runs $runs \
            --header "$(key_hdr $n valid)" --nginx "$NGINX" \
            | sed "s/^/$kind\t$n\t/" >> $RESULTS/startup.tsv \
            || log "start-up: $kind $(label $n) failed, left out"
    done
done


# --- revocation latency ----------------------------------------------------

log "revocation latency"
rd=$W/data/revoke
rm -rf $rd
mkdir -p $rd
# shellcheck disable=SC2086
"$APIKEYCTL" -d $rd/db -s $rd/secret init $INIT_USER > /dev/null
conf revoke apikey revoke 18498 wrk
"$NGINX" -p $W/run/revoke -c $W/run/revoke/nginx-wrk.conf \
    > $W/run/revoke/logs/stdout.log 2>&1 &
PIDS+=($!)
perl -I"$BENCH/lib" -MBench -e \
    'exit(defined Bench::wait_port($ARGV[0], 60) ? 0 : 1)' 18498 \
    || die "nginx for the revocation test did not start"
echo "run	latency_ms	accepted_after	revoke_ms	request_ms" > $RESULTS/revoke.tsv
perl "$BENCH/revoke.pl" --port 18498 --runs 5 -- \
    "$APIKEYCTL" -d $rd/db -s $rd/secret >> $RESULTS/revoke.tsv
cleanup


# --- import rate: apikeyctl import against mdb_load ------------------------

# timed CMD...: runs CMD with its output discarded, prints "WALL_MS CPU_MS"
# (CPU: user + system of the command), fails if it fails
timed() {
    perl -MTime::HiRes=time -e '
        open(my $out, ">&", \*STDOUT) or die;
        open(STDOUT, ">", "/dev/null") or die;
        my $t = time;
        my $rc = system(@ARGV);
        open(STDOUT, ">&", $out) or die;
        exit 1 if $rc != 0;
        my @c = times;
        printf "%d %d\n", (time - $t) * 1000, ($c[2] + $c[3]) * 1000;
    ' -- "$@"
}

log "import: apikeyctl import of $(label $BIG) keys into a fresh database"
I=$W/import
rm -rf $I
mkdir -p $I
"$APIKEYCTL" -d $I/db -s $I/secret init > /dev/null
read -r w_import c_import < <(timed "$APIKEYCTL" -d $I/db -s $I/secret \
    import --format csv $W/data/$BIG/keys.csv) \
    || die "apikeyctl import failed"

mdb_dump -s keys $I/db > $I/keys.dump
mdb_dump -s ids $I/db > $I/ids.dump
log "import: mdb_load of the same records (-s keys, then -s ids)"
mkdir -p $I/load
# Debian's mdb_load warns about the db_pagesize line of mdb_dump
read -r w_keys c_keys < <(timed mdb_load -s keys -f $I/keys.dump $I/load \
    2> $I/load.log) || die "mdb_load -s keys failed: $(cat $I/load.log)"
read -r w_ids c_ids < <(timed mdb_load -s ids -f $I/ids.dump $I/load \
    2> $I/load.log) || die "mdb_load -s ids failed: $(cat $I/load.log)"
{
    echo "tool	keys	ms	cpu_ms	keys_per_s"
    echo "apikeyctl import	$BIG	$w_import	$c_import	$(( BIG * 1000 / (w_import > 0 ? w_import : 1) ))"
    w=$((w_keys + w_ids)) c=$((c_keys + c_ids))
    echo "mdb_load	$BIG	$w	$c	$(( BIG * 1000 / (w > 0 ? w : 1) ))"
} > $RESULTS/import.tsv
rm -rf $I

# the import cases of bench/import.pl (make bench-import): 1M keys with and
# without ids, --replace 1M over 1M and 10M keys, with peak memory
log "import: bench/import.pl"
if [ $MODE = full ]; then
    perl "$BENCH/import.pl" --build $B --out $RESULTS/import.md > /dev/null
else
    perl "$BENCH/import.pl" --build $B --n $BIG --no-10m \
        --out $RESULTS/import.md > /dev/null
fi


# --- report and charts -----------------------------------------------------

log "report"
perl "$BENCH/report.pl" $RESULTS
(cd $RESULTS && gnuplot "$BENCH/charts.gp")
log "done: $RESULTS/results.md"
cat $RESULTS/results.md
