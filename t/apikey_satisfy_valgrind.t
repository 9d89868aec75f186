#!/usr/bin/perl

# Tests the WWW-Authenticate header of a 401 under "satisfy any", with
# nginx under valgrind memcheck: since nginx 1.23, repeated response
# headers are linked through ngx_table_elt_t.next, and the core walks
# that chain to drop the challenge when another module grants access; a
# next left unset was read as uninitialised memory.  Run by make test
# with Debian's nginx and with nginx 1.29.8 (make test-1.29.8).

use strict;
use warnings;

use Test::More;

BEGIN {
    $ENV{TEST_NGINX_VALGRIND} = 1 if -x '/usr/bin/valgrind';
}

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'no valgrind (apt-get install valgrind)')
    unless -x '/usr/bin/valgrind';
plan(skip_all => 'the harness has no valgrind mode')
    unless Apikey::Harness->can('check_valgrind');

$t->init_db();

my $key = $t->gen('--id', 'alice');

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /any {
            satisfy any;
            allow 127.0.0.1;
            deny all;
            apikey on;
            empty_gif;
        }

        location /any-denied {
            satisfy any;
            deny all;
            apikey on;
            empty_gif;
        }

        location /all {
            satisfy all;
            allow 127.0.0.1;
            apikey on;
            empty_gif;
        }
    }
EOF

$t->start();

my $r = $t->get('/any');
is($r->{status}, 200, 'satisfy any: no key, address allowed');
is($r->{headers}{'www-authenticate'}, undef,
   'satisfy any: the challenge is dropped');

$r = $t->get('/any', 'X-API-Key' => 'not-a-key-at-all');
is($r->{status}, 200, 'satisfy any: unknown key, address allowed');

$r = $t->get('/any-denied');
is($r->{status}, 401, 'satisfy any, address denied: no key');
is_deeply($r->{headers}{'www-authenticate'}, ['ApiKey realm="api"'],
          'satisfy any, address denied: one challenge');

is($t->get('/any-denied', 'X-API-Key' => $key)->{status}, 200,
   'satisfy any, address denied: valid key');

$r = $t->get('/all', 'Authorization' => 'Bearer nope-nope-nope');
is($r->{status}, 401, 'satisfy all: unknown key');
is_deeply($r->{headers}{'www-authenticate'}, ['Bearer realm="api"'],
          'satisfy all: one challenge');

is($t->get('/all', 'X-API-Key' => $key)->{status}, 200,
   'satisfy all: valid key');

$t->stop();

# the read of an unset next field happens in nginx's own code, so every
# error counts here, not only those with the module on the stack

my @errors;
for my $file (glob $t->prefix() . '/logs/valgrind.*.log') {
    push @errors, grep { /uninitialised|Invalid (?:read|write)/ }
                  split /\n/, Apikey::Harness::slurp($file);
}

is(join("\n", @errors), '', 'no valgrind error anywhere in nginx');

$t->check_log();

done_testing();
