#!/usr/bin/perl

# Tests that several spellings of one database directory ("/path",
# "/path/", a symlink to it) open one LMDB environment in a worker: LMDB must never open
# an environment twice in a process (the second open resets the reader
# table under the first, and closing either drops the other's locks).

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'no mdb_stat (lmdb-utils)') unless -x '/usr/bin/mdb_stat';

$t->init_db();

my $key = $t->gen('--id', 'alice');
my $db = $t->db();
my $link = $t->prefix() . '/db-link';

symlink($db, $link) or die "symlink: $!";

$t->write_config(<<'EOF2');
    apikey_secret %%SECRET%%;
    apikey_db %%DB%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location /plain/ {
            apikey on;
            empty_gif;
        }

        location /slash/ {
            apikey on;
            apikey_db %%DB%%//;
            empty_gif;
        }

        location /link/ {
            apikey on;
            apikey_db %%PREFIX%%/db-link;
            empty_gif;
        }
    }
EOF2

$t->start();

is($t->get('/plain/', 'X-API-Key' => $key)->{status}, 200, 'plain path');
is($t->get('/slash/', 'X-API-Key' => $key)->{status}, 200,
   'path with trailing slashes');
is($t->get('/link/', 'X-API-Key' => $key)->{status}, 200, 'path by a symlink');

# the worker: the reader table names it; count its maps of data.mdb

my ($worker) = `/usr/bin/mdb_stat -r $db` =~ /^\s+(\d+)\s+[0-9a-f]+\s/m;

SKIP: {
    skip 'worker not found in the reader table', 1 unless $worker;
    skip 'cannot read the maps of the worker', 1
        unless open my $fh, '<', "/proc/$worker/maps";

    my @maps = grep { m{\Q$db\E/+data\.mdb$} } <$fh>;

    is(scalar @maps, 1, 'one environment for every spelling');
}

$t->ctl_ok('disable', 'alice');

is($t->get('/slash/', 'X-API-Key' => $key)->{status}, 401,
   'change seen through the other spelling');
is($t->get('/link/', 'X-API-Key' => $key)->{status}, 401,
   'change seen through the symlink');

$t->stop();

$t->check_log();

done_testing();
