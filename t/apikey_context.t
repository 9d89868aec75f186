#!/usr/bin/perl

# Tests that the lookup cached in the request context is used only by
# the configuration it was made for: an $apikey_* variable evaluated in
# the server rewrite phase, or in a location left by "rewrite ... last",
# must not let a key of one database into a location that names another.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

my $user = Apikey::Harness::worker_user();
my $admin_db = $t->prefix() . '/db-admin';

$t->init_db();
$t->ctl_ok({ db => $admin_db }, 'init', defined $user ? ('--user', $user) : ());

my $public = $t->gen('--id', 'public');
my $admin = $t->ctl_ok({ db => $admin_db }, 'gen', '--id', 'admin');
chomp $admin;

$t->write_config(<<'EOF');
    apikey_secret %%SECRET%%;
    apikey_db %%DB%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        set $early $apikey_status;
        set $early_id $apikey_id;

        location /admin/ {
            apikey on;
            apikey_db %%PREFIX%%/db-admin;
            add_header X-Id $apikey_id always;
            add_header X-Status $apikey_status always;
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location /public/ {
            set $early $apikey_status;
            rewrite ^ /admin/ last;
        }

        location /admin/ {
            apikey on;
            apikey_db %%PREFIX%%/db-admin;
            empty_gif;
        }
    }
EOF

$t->start();

my $r;

# a variable evaluated at the server level, before the location is known

$r = $t->get('/admin/', 'X-API-Key' => $public);
is($r->{status}, 401, 'server-level lookup: key of another database');

is_deeply($r->{headers}{'x-status'}, ['unknown'],
          'server-level lookup: status of the location database');
ok(!$r->{headers}{'x-id'}, 'server-level lookup: no identity of the other');

$r = $t->get('/admin/', 'X-API-Key' => $admin);
is($r->{status}, 200, 'server-level lookup: key of the location database');
is_deeply($r->{headers}{'x-id'}, ['admin'],
          'server-level lookup: identity of the location database');

# a variable evaluated in a location left by rewrite ... last

$r = Apikey::Harness::http_get($t->port(1), '/public/',
                               'X-API-Key' => $public);
is($r->{status}, 401, 'rewrite last: key of another database');

$r = Apikey::Harness::http_get($t->port(1), '/public/',
                               'X-API-Key' => $admin);
is($r->{status}, 200, 'rewrite last: key of the location database');

$t->stop();

$t->check_log();

done_testing();
