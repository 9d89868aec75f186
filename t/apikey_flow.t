#!/usr/bin/perl

# Tests for the request flow around the key: CORS preflight with
# apikey_skip_preflight (no key, no lookup), apikey_scope inside
# limit_except, per-plan rate limits from $apikey_plan, and the JSON
# error recipe that keeps the status and WWW-Authenticate.  The satisfy
# matrix is in apikey_satisfy.t.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Apikey::Harness qw(http_raw);

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $reader = $t->gen('--id', 'reader', '--scopes', 'read', '--plan', 'free');
my $writer = $t->gen('--id', 'writer', '--scopes', 'write', '--plan', 'free');
my $both = $t->gen('--id', 'both', '--scopes', 'read,write', '--plan', 'gold');
my $free = $t->gen('--id', 'free', '--plan', 'free');
my $gold = $t->gen('--id', 'gold', '--plan', 'gold');

$t->write_config(<<"EOF", access_log => 1);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    log_format t '\$request_method \$uri \$status st=\$apikey_status '
                 'id=\$apikey_id';
    access_log %%PREFIX%%/logs/access.log t;

    map \$apikey_plan \$free_key {
        free     \$apikey_id;
        default  "";
    }

    map \$apikey_plan \$gold_key {
        gold     \$apikey_id;
        default  "";
    }

    limit_req_zone \$free_key zone=free:1m rate=1r/m;
    limit_req_zone \$gold_key zone=gold:1m rate=100r/s;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /cors/ {
            apikey on;
            apikey_skip_preflight on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /nocors/ {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /le/ {
            apikey on;
            apikey_scope read;

            limit_except GET {
                apikey_scope write;
            }

            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /le-inherit/ {
            apikey on;
            apikey_scope read;

            limit_except GET {
                allow all;
            }

            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /plan/ {
            apikey on;
            limit_req zone=free;
            limit_req zone=gold burst=20 nodelay;
            limit_req_status 429;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /json/ {
            apikey on;
            apikey_scope write;
            error_page 401 403 503 \@apikey_json;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /json-broken/ {
            apikey on;
            apikey_db %%PREFIX%%/no-such-db;
            error_page 401 403 503 \@apikey_json;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location \@apikey_json {
            default_type application/json;
            return 200 '{"error":"\$apikey_status"}\\n';
        }

        location /json-401/ {
            apikey on;
            apikey_scope write;
            error_page 401 403 503 = \@apikey_json_401;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location \@apikey_json_401 {
            default_type application/json;
            return 401 '{"error":"\$apikey_status"}\\n';
        }

    }

    server {
        listen 127.0.0.1:%%PORT_1%%;
        access_log off;

        location / {
            default_type text/plain;
            return 200 "ok \$request_method\\n";
        }
    }
EOF

$t->start();

sub req {
    my ($method, $uri, @headers) = @_;

    my $req = "$method $uri HTTP/1.1\r\nHost: localhost\r\n"
              . "Connection: close\r\n";
    $req .= "Content-Length: 0\r\n" if $method =~ /^(POST|PUT|DELETE)$/;

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($t->port(0), "$req\r\n");
}

sub hdr {
    my ($r, $name) = @_;
    return join(', ', @{$r->{headers}{lc $name} // []});
}

my $r;
my @cors = (Origin => 'https://app.example',
            'Access-Control-Request-Method' => 'POST');

# CORS preflight

$r = req('OPTIONS', '/cors/p1', @cors);
is($r->{status}, 200, 'preflight passes without a key');
is($r->{body}, "ok OPTIONS\n", 'preflight reaches the upstream');

$r = req('OPTIONS', '/cors/p2', @cors, 'X-API-Key' => 'not-a-valid-key');
is($r->{status}, 200, 'preflight passes whatever the key');

$r = req('OPTIONS', '/cors/p3', Origin => 'https://app.example');
is($r->{status}, 401, 'options with origin alone needs a key');

$r = req('OPTIONS', '/cors/p4', 'Access-Control-Request-Method' => 'POST');
is($r->{status}, 401, 'options with the method alone needs a key');

$r = req('OPTIONS', '/cors/p5');
is($r->{status}, 401, 'bare options needs a key');

$r = req('OPTIONS', '/cors/p6', 'X-API-Key' => $reader);
is($r->{status}, 200, 'bare options with a key');

$r = req('GET', '/cors/p7', @cors);
is($r->{status}, 401, 'get with the preflight headers needs a key');

$r = req('POST', '/cors/p8', @cors);
is($r->{status}, 401, 'post with the preflight headers needs a key');

$r = req('OPTIONS', '/nocors/p9', @cors);
is($r->{status}, 401, 'preflight needs a key when not skipped');
is(hdr($r, 'WWW-Authenticate'), 'ApiKey realm="api"',
   'preflight not skipped: www-authenticate');

# limit_except: GET (and HEAD) need read, every other method write

my %le = (
    'GET reader' => 200, 'GET writer' => 403, 'GET both' => 200,
    'HEAD reader' => 200, 'HEAD writer' => 403,
    'POST reader' => 403, 'POST writer' => 200, 'POST both' => 200,
    'DELETE reader' => 403, 'DELETE writer' => 200,
    'PUT both' => 200,
);
my %keys = (reader => $reader, writer => $writer, both => $both);

for my $case (sort keys %le) {
    my ($method, $who) = split / /, $case;

    $r = req($method, '/le/', 'X-API-Key' => $keys{$who});
    is($r->{status}, $le{$case}, "limit_except: $method by $who");
}

$r = req('POST', '/le/');
is($r->{status}, 401, 'limit_except: post without a key');

# a limit_except without apikey_scope inherits the location's

$r = req('POST', '/le-inherit/', 'X-API-Key' => $reader);
is($r->{status}, 200, 'limit_except inherits: post by reader');
$r = req('POST', '/le-inherit/', 'X-API-Key' => $writer);
is($r->{status}, 403, 'limit_except inherits: post by writer');

# per-plan limits: free is 1 request a minute, gold is not limited here

my @free = map { req('GET', "/plan/f$_", 'X-API-Key' => $free)->{status} }
           1 .. 3;
is("@free", '200 429 429', 'free plan limited');

my @other = map { req('GET', "/plan/o$_", 'X-API-Key' => $reader)->{status} }
            1 .. 2;
is("@other", '200 429', 'each free key has its own limit');

my @gold = map { req('GET', "/plan/g$_", 'X-API-Key' => $gold)->{status} }
           1 .. 10;
is("@gold", join(' ', (200) x 10), 'gold plan not limited');

my @anon = map { req('GET', "/plan/a$_")->{status} } 1 .. 3;
is("@anon", '401 401 401', 'no key: 401, never limited');

# JSON errors: error_page without "=" keeps the status and the headers

$r = req('GET', '/json/');
is($r->{status}, 401, 'json: missing status');
is(hdr($r, 'Content-Type'), 'application/json', 'json: missing type');
is(hdr($r, 'WWW-Authenticate'), 'ApiKey realm="api"',
   'json: missing www-authenticate');
is($r->{body}, qq({"error":"missing"}\n), 'json: missing body');

$r = req('GET', '/json/', 'X-API-Key' => 'short');
is($r->{status}, 401, 'json: malformed status');
is(hdr($r, 'WWW-Authenticate'), 'ApiKey realm="api"',
   'json: malformed www-authenticate');
is($r->{body}, qq({"error":"malformed"}\n), 'json: malformed body');

$r = req('GET', '/json/', 'X-API-Key' => $reader);
is($r->{status}, 403, 'json: forbidden status');
is(hdr($r, 'WWW-Authenticate'), '', 'json: forbidden has no challenge');
is($r->{body}, qq({"error":"forbidden"}\n), 'json: forbidden body');

$r = req('GET', '/json/', 'X-API-Key' => $writer);
is($r->{status}, 200, 'json: valid passes');
is($r->{body}, "ok GET\n", 'json: valid body');

$r = req('GET', '/json-broken/', 'X-API-Key' => $writer);
is($r->{status}, 503, 'json: database error status');
is($r->{body}, qq({"error":"error"}\n), 'json: database error body');

# with "=" the named location's own status is sent: 401 for a 403 too

$r = req('GET', '/json-401/', 'X-API-Key' => $reader);
is($r->{status}, 401, 'json with "=": the status of the recipe');
is($r->{body}, qq({"error":"forbidden"}\n), 'json with "=": body');

# no lookup for a preflight: $apikey_status is empty (not found: "-")

$t->stop();

my $log = $t->access_log();

like($log, qr{^OPTIONS /cors/p1 200 st=- id=-$}m,
     'preflight: no status in the access log');
like($log, qr{^OPTIONS /cors/p2 200 st=- id=-$}m,
     'preflight with a key: no lookup');
like($log, qr{^OPTIONS /cors/p3 401 st=missing id=-$}m,
     'not a preflight: missing');
like($log, qr{^OPTIONS /cors/p6 200 st=valid id=reader$}m,
     'options with a key: looked up');

$t->check_log();

done_testing();
