#!/bin/sh
#
# make demo: a database with one key, and nginx on 127.0.0.1:8080 in the
# foreground in front of a small upstream on 127.0.0.1:8081 (DEMO_PORT and
# DEMO_UPSTREAM_PORT change them).  Ctrl-C stops.

set -e

cd "$(dirname "$0")/.."

root=$(pwd)
port=${DEMO_PORT:-8080}
upstream=${DEMO_UPSTREAM_PORT:-8081}
demo=${DEMO_DIR:-$root/build/demo}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
# the module and apikeyctl: the tests point this at the build they test
build=${APIKEY_BUILD:-$root/build}

# nginx reads NGINX itself: inherited listening sockets
unset NGINX
ctl="$build/apikeyctl -d $demo/db -s $demo/apikey.secret"

rm -rf "$demo"
mkdir -p "$demo/logs" "$demo/tmp"
chmod 0755 "$demo"
chmod 0777 "$demo/tmp"

if [ "$(id -u)" -eq 0 ]; then
    $ctl init --user nobody > /dev/null
    user="user nobody nogroup;"
else
    $ctl init > /dev/null
    user=
fi

key=$($ctl gen --id demo --subject "demo user" --scopes read --plan free)

cat > "$demo/nginx.conf" << END
$user
load_module $build/ngx_http_apikey_module.so;
daemon off;
master_process on;
worker_processes 1;
pid $demo/nginx.pid;
error_log stderr notice;

events { worker_connections 256; }

http {
    client_body_temp_path $demo/tmp;
    proxy_temp_path $demo/tmp;

    log_format apikey '\$remote_addr "\$request" \$status '
                      'apikey=\$apikey_status id=\$apikey_id';
    access_log /dev/stdout apikey;

    apikey_db $demo/db;
    apikey_secret $demo/apikey.secret;

    server {
        listen 127.0.0.1:$port;

        location / {
            apikey on;
            proxy_set_header X-API-Key "";
            proxy_set_header Authorization "";
            proxy_set_header X-Apikey-Id \$apikey_id;
            proxy_set_header X-Apikey-Subject \$apikey_subject;
            proxy_pass http://127.0.0.1:$upstream;
        }
    }

    # the upstream: it only ever sees requests with a valid key
    server {
        listen 127.0.0.1:$upstream;
        access_log off;

        location / {
            default_type text/plain;
            return 200 "hello \$http_x_apikey_subject (key id \$http_x_apikey_id)\n";
        }
    }
}
END

cat << END

  nginx with ngx_http_apikey_module on http://127.0.0.1:$port/

  this works (200):
    curl -H 'X-API-Key: $key' http://127.0.0.1:$port/

  this fails (401):
    curl -i -H 'X-API-Key: ak_wrong' http://127.0.0.1:$port/

  manage keys:
    $ctl list
    $ctl revoke demo

  Ctrl-C stops nginx.

END

exec "$nginx" -p "$demo/" -c "$demo/nginx.conf"
