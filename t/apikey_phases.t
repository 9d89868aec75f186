#!/usr/bin/perl

# Tests for the module among nginx's own access machinery: satisfy any and
# all with allow/deny, error_page on a 401 with the status kept across the
# internal redirect, and $apikey_id used by limit_req in the preaccess
# phase, before the access handler runs.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $key = $t->gen('--id', 'alice');
my $other = $t->gen('--id', 'bob');

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    limit_req_zone $apikey_id zone=perkey:1m rate=1r/m;
    limit_req_status 429;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /any-allowed/ {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            apikey on;
            empty_gif;
        }

        location /any-denied/ {
            satisfy any;
            deny all;
            apikey on;
            empty_gif;
        }

        location /all/ {
            satisfy all;
            allow 127.0.0.1;
            apikey on;
            empty_gif;
        }

        location /all-denied/ {
            satisfy all;
            deny all;
            apikey on;
            empty_gif;
        }

        location /errpage/ {
            apikey on;
            error_page 401 = /why;
            empty_gif;
        }

        location = /why {
            default_type text/plain;
            return 200 "status=$apikey_status\n";
        }

        location /limited/ {
            limit_req zone=perkey nodelay;
            apikey on;
            empty_gif;
        }
    }
EOF

$t->start();

my $r;

# satisfy any: either allow or the key

$r = $t->get('/any-allowed/');
is($r->{status}, 200, 'satisfy any: allowed address without key');
ok(!$r->{headers}{'www-authenticate'}, 'satisfy any: no challenge when allowed');

$r = $t->get('/any-denied/', 'X-API-Key' => $key);
is($r->{status}, 200, 'satisfy any: denied address with valid key');

$r = $t->get('/any-denied/');
is($r->{status}, 401, 'satisfy any: denied address without key');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="api"'],
          'satisfy any: challenge kept');

# satisfy all: both

$r = $t->get('/all/');
is($r->{status}, 401, 'satisfy all: allowed address without key');

$r = $t->get('/all/', 'X-API-Key' => $key);
is($r->{status}, 200, 'satisfy all: allowed address with key');

$r = $t->get('/all-denied/', 'X-API-Key' => $key);
is($r->{status}, 403, 'satisfy all: denied address with key');

# error_page: the status survives the internal redirect

$r = $t->get('/errpage/', 'X-API-Key' => 'no-such-key-here');
is($r->{status}, 200, 'error_page handles the 401');
is($r->{body}, "status=unknown\n", 'status kept across error_page');

$r = $t->get('/errpage/');
is($r->{body}, "status=missing\n", 'missing status across error_page');

# limit_req keyed by $apikey_id runs before the access handler

$r = $t->get('/limited/', 'X-API-Key' => $key);
is($r->{status}, 200, 'first request of a key');

$r = $t->get('/limited/', 'X-API-Key' => $key);
is($r->{status}, 429, 'second request of the same key limited');

$r = $t->get('/limited/', 'X-API-Key' => $other);
is($r->{status}, 200, 'another key has its own limit');

$r = $t->get('/limited/', 'X-API-Key' => 'no-such-key-here');
is($r->{status}, 401, 'unknown key not limited by the key zone');

$r = $t->get('/limited/', 'X-API-Key' => 'no-such-key-here');
is($r->{status}, 401, 'unknown key again not limited');

$t->stop();

$t->check_log();

done_testing();
