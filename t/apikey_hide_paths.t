#!/usr/bin/perl

# Tests the ways a key could still reach an upstream with
# apikey_hide_credentials on, found by trying them: an auth_request
# subrequest, an error_page that proxies a rejection, whitespace other
# than a space in Authorization, a percent-encoded argument or cookie
# name, and X_API_Key with underscores_in_headers.  Each is hidden, and
# each copy is counted, so that nginx and an upstream never disagree.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(http_raw);

my $t = Apikey::Harness->new()->require_all()
    ->require_modules('http_auth_request');

$t->init_db();

my $k1 = $t->gen('--id', 'alice', '--scopes', 'read');
my $k2 = $t->gen('--id', 'bob', '--scopes', 'read');

my $record = $t->prefix() . '/upstream.log';

# the upstream: answers with the raw request, and appends it to a file

$t->echo_upstream(1, $record);

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;
    apikey_source header=X-API-Key authorization=Bearer query=api_key
                  cookie=apikey;
    apikey_hide_credentials on;
    proxy_http_version 1.0;

    server {
        listen 127.0.0.1:%%PORT%%;
        underscores_in_headers on;

        location /ar/ {
            apikey on;
            auth_request /authsub;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location = /authsub {
            internal;
            proxy_set_header X-Original-URI $request_uri;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /ep/ {
            apikey on;
            apikey_scope admin;
            error_page 401 403 = @up;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location @up {
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /tf/ {
            apikey on;
            try_files /nonexistent @tf;
        }

        location @tf {
            apikey on;
            add_header X-Apikey "$apikey_status|$apikey_source|$apikey_id"
                       always;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /tf2/ {
            apikey on;
            try_files /nonexistent @tf2;
        }

        location @tf2 {
            apikey on;
            apikey_source header=X-API-Key;
            add_header X-Apikey "$apikey_status|$apikey_source|$apikey_id"
                       always;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /ep2/ {
            apikey on;
            apikey_scope admin;
            error_page 403 = @noscope;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location @noscope {
            apikey on;
            add_header X-Apikey "$apikey_status|$apikey_source|$apikey_id"
                       always;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location / {
            apikey on;
            add_header X-Apikey "$apikey_status|$apikey_source|$apikey_id"
                       always;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }
EOF

$t->start();

sub req {
    my ($uri, @headers) = @_;

    my $req = "GET $uri HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n";

    while (my ($k, $v) = splice(@headers, 0, 2)) {
        $req .= "$k: $v\r\n";
    }

    return http_raw($t->port(0), "$req\r\n");
}

sub outcome {
    my ($r) = @_;
    return join '', @{$r->{headers}{'x-apikey'} // []};
}

sub no_key {
    my ($what, $text) = @_;
    my @found = grep { index($text, $_) >= 0 } $k1, $k2;
    is(scalar @found, 0, "$what: no key");
}

# auth_request: its subrequest, made after the access handler, carries
# no key in its headers, cookies or X-Original-URI

unlink $record;

my $r = req("/ar/a?x=1&api_key=$k1", 'X-API-Key' => $k1,
            'Authorization' => "Bearer $k1", 'Cookie' => "apikey=$k1; o=1");
is($r->{status}, 200, 'auth_request: valid');
like($r->{body}, qr{^GET /ar/a\?x=1 HTTP/1\.0\r\n}, 'auth_request: main');

my $seen = Apikey::Harness::slurp($record);
like($seen, qr{^GET /authsub HTTP/1\.0\r\n}m, 'auth_request: subrequest');
like($seen, qr{^X-Original-URI: /ar/a\?x=1\r$}m,
     'auth_request: subrequest URI without the key');
like($seen, qr{^Cookie: o=1\r$}m, 'auth_request: other cookies kept');
no_key('auth_request: both upstream requests', $seen);

# error_page proxying a rejection: 403 for a valid key lacking a scope,
# 401 for an unknown one

$r = req("/ep/a?q=1&api_key=$k1", 'X-API-Key' => $k1);
is($r->{status}, 200, 'error_page 403 proxied');
like($r->{body}, qr{^GET /ep/a\?q=1 HTTP/1\.0\r\n}, 'error_page 403: URI');
no_key('error_page 403', $r->{body});

$r = req('/ep/b', 'Authorization' => "Bearer ${k1}x", 'Cookie' => 'a=1');
is($r->{status}, 200, 'error_page 401 proxied');
no_key('error_page 401', $r->{body});
unlike($r->{body}, qr/^Authorization:/mi, 'error_page 401: no Bearer');

# an internal redirect after the key was hidden (try_files, error_page)
# keeps the key found before: the next location accepts it, even with
# other sources, and its own scopes decide

$r = req("/tf/a?api_key=$k1");
is($r->{status}, 200, 'try_files after hide: 200');
is(outcome($r), 'valid|query=api_key|alice', 'try_files after hide: valid');
no_key('try_files after hide', $r->{body});

$r = req('/tf2/a', 'Authorization' => "Bearer $k1");
is(outcome($r), 'valid|authorization=Bearer|alice',
   'try_files to other sources after hide: valid');
no_key('try_files to other sources after hide', $r->{body});

$r = req('/tf2/a');
is($r->{status}, 401, 'try_files after hide, no key: 401');

$r = req("/ep2/a?api_key=$k1");
is($r->{status}, 200, 'error_page 403 to a location without the scope');
is(outcome($r), 'valid|query=api_key|alice',
   'error_page 403 to a location without the scope: valid there');
no_key('error_page 403 to a location without the scope', $r->{body});

# whitespace in Authorization: "Bearer<TAB>key" is a Bearer key, as
# upstreams that split on whitespace read it

$r = req('/w', 'Authorization' => "Bearer\t$k1");
is(outcome($r), 'valid|authorization=Bearer|alice', 'Bearer<TAB>key');
unlike($r->{body}, qr/^Authorization:/mi, 'Bearer<TAB>key hidden');

$r = req('/w', 'Authorization' => "Bearer\x0b$k1");
is(outcome($r), 'valid|authorization=Bearer|alice', 'Bearer<VT>key');

$r = req('/w', 'X-API-Key' => $k1, 'Authorization' => "Bearer\t$k2");
is($r->{status}, 401, 'header and Bearer<TAB>other: 401');
is(outcome($r), 'malformed|header=X-API-Key|', 'header and Bearer<TAB>other');

# percent-encoded argument names are the argument

$r = req("/q?a=1&api%5Fkey=$k1&b=2");
is(outcome($r), 'valid|query=api_key|alice', 'api%5Fkey is api_key');
like($r->{body}, qr{^GET /q\?a=1&b=2 HTTP/1\.0\r\n}, 'api%5Fkey hidden');

$r = req("/q?api_key=$k1&api%5Fkey=$k2");
is($r->{status}, 401, 'api_key and api%5Fkey: 401');
is(outcome($r), 'malformed|query=api_key|', 'api_key and api%5Fkey: copies');

# cookies: an encoded name, whitespace around "="

$r = req('/c', 'Cookie' => "x=1; api%6bey=$k1; y=2");
is(outcome($r), 'valid|cookie=apikey|alice', 'api%6bey is apikey');
like($r->{body}, qr{^Cookie: x=1; y=2\r$}m, 'api%6bey hidden');

$r = req('/c', 'Cookie' => "apikey = $k1; y=2");
is(outcome($r), 'valid|cookie=apikey|alice', 'apikey = key');
like($r->{body}, qr{^Cookie: y=2\r$}m, 'apikey = key hidden');

$r = req('/c', 'Cookie' => "api%6bey=$k2; apikey=$k1");
is($r->{status}, 401, 'api%6bey and apikey: 401');

# underscores_in_headers on: X_API_Key is a copy of X-API-Key

$r = req('/u', 'X_API_Key' => $k1);
is(outcome($r), 'valid|header=X-API-Key|alice', 'X_API_Key alone');
unlike($r->{body}, qr/^X[-_]API[-_]Key:/mi, 'X_API_Key hidden');

$r = req('/u', 'X_API_Key' => $k2, 'X-API-Key' => $k1);
is($r->{status}, 401, 'X_API_Key and X-API-Key: 401');
is(outcome($r), 'malformed|header=X-API-Key|', 'X_API_Key and X-API-Key');

$t->stop();

$t->check_log();

done_testing();
