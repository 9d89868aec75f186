#!/usr/bin/perl

# Tests a database after a large revoke in one transaction, with two
# workers: LMDB does not write pages it allocated and freed within the
# transaction, so data.mdb ends before the last page its meta page
# claims.  That is no truncation: nginx and apikeyctl keep using it.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

$t->init_db();

my $keep = $t->gen('--id', 'keep');
my $csv = "id,key\n"
          . join('', map { "m$_,many-key-$_-0123456789\n" } 1 .. 3000);

$t->ctl_ok({ input => $csv }, 'import', '-');

$t->write_config(<<'EOF2', workers => 2);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF2

$t->start();

is($t->get('/', 'X-API-Key' => 'many-key-7-0123456789')->{status}, 200,
   'bulk key valid');

my ($rc, $out, $err) = $t->ctl({ input => join("\n", map { "m$_" } 1 .. 3000)
                                          . "\n" }, 'revoke', '-');
is($rc, 0, 'revoke 3000 ids in one transaction') or diag($err);

my $db = $t->db();
diag(sprintf 'data.mdb: %d bytes after the revoke', -s "$db/data.mdb");

for my $cmd (['export'], ['list', '--format', 'csv'], ['gen', '--id', 'new']) {
    ($rc, $out, $err) = $t->ctl(@$cmd);
    is($rc, 0, "$cmd->[0] after the revoke") or diag($err);
}

my @s = map { $t->get('/', 'X-API-Key' => 'many-key-' . (7 * $_) . '-0123456789')
                  ->{status} } 1 .. 20;
is(join(',', grep { $_ != 401 } @s), '', 'revoked keys: 401');

@s = map { $t->get('/', 'X-API-Key' => $keep)->{status} } 1 .. 20;
is(join(',', grep { $_ != 200 } @s), '', 'the key kept: 200 on every worker');

sleep 1.5;

@s = map { $t->get('/', 'X-API-Key' => $keep)->{status} } 1 .. 20;
is(join(',', grep { $_ != 200 } @s), '', 'still 200 after the checks');

$t->stop();

unlike($t->error_log(), qr/shorter than the pages/, 'no truncation logged');

$t->check_log();

done_testing();
