#!/usr/bin/perl

# Tests the stored hash: RFC 7693 keyed BLAKE2b-256 of the key with the
# secret as its key, exactly what Python computes with
# hashlib.blake2b(key, key=secret, digest_size=32), so that a system of
# record in any language can store hashes that import accepts; and a
# database of format 1 (the old hash) refused clearly by nginx and by
# apikeyctl.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_all();

my $python = '/usr/bin/python3';

plan(skip_all => "no $python (python3) to compute the vectors")
    unless -x $python;
plan(skip_all => 'no mdb_load (lmdb-utils)') unless -x '/usr/bin/mdb_load';

$t->init_db();

my $prefix = $t->prefix();

# the keyed hash, computed by Python from the secret file

sub python_hash {
    my ($key) = @_;

    my $file = "$prefix/py.key";
    Apikey::Harness::write_file($file, $key);

    my $hex = `$python -c '
import hashlib, sys
secret = bytes.fromhex(open(sys.argv[1]).read().strip())
key = open(sys.argv[2], "rb").read()
print(hashlib.blake2b(key, key=secret, digest_size=32).hexdigest())
' $prefix/apikey.secret $file`;

    unlink $file;
    chomp $hex;

    return $hex;
}

# a generated key: its stored hash is Python's

my $key = $t->gen('--id', 'gen1');
my $csv = $t->ctl_ok('export', '--format', 'csv');
my ($stored) = $csv =~ /^"?([0-9a-f]{64})"?,"?gen1"?,/m;

ok(defined $stored, 'export shows the stored hash');
is($stored, python_hash($key), 'stored hash is hashlib.blake2b');

# imported keys of several lengths, one past a BLAKE2b block

for my $k ('abcdefgh', 'k' x 127, 'x' x 128, 'y' x 129, 'z' x 256,
           '~!@#$%^&*()_+{}|:<>?') {
    my $id = 'len' . length $k;

    $t->ctl_ok({ input => "key,id\n\"$k\",$id\n" }, 'import', '-');

    my ($h) = $t->ctl_ok('export', '--format', 'csv')
              =~ /^"?([0-9a-f]{64})"?,"?$id"?,/m;
    is($h, python_hash($k), "hash of a key of " . length($k) . " bytes");
}

# a hash computed by Python, imported in the hash column: nginx accepts
# the key it came from

my $plain = 'python-made-key-0123456789';
my $hash = python_hash($plain);

$t->ctl_ok({ input => "hash,id\n$hash,frompy\n" }, 'import', '-');

my ($rc, $out, $err) = $t->ctl('verify', $plain);
is($rc, 0, 'apikeyctl verify accepts the key of a Python hash');

$t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            add_header X-Id $apikey_id always;
            empty_gif;
        }
    }
EOF

$t->start();

my $r = $t->get('/', 'X-API-Key' => $plain);
is($r->{status}, 200, 'nginx accepts the key of a Python hash');
is_deeply($r->{headers}{'x-id'}, ['frompy'], 'the id of the Python hash');
is($t->get('/', 'X-API-Key' => $key)->{status}, 200, 'generated key');

# the database set back to format 1, as an older apikeyctl made it; a
# worker checks the format when it opens the database

$t->stop();

my $db = $t->db();
my $dump = "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
           . " " . unpack('H*', 'format') . "\n"
           . " 0100000000000000\n"
           . "DATA=END\n";

open my $fh, '|-', "/usr/bin/mdb_load -s meta $db" or die "mdb_load: $!";
print $fh $dump;
close $fh;
is($?, 0, 'format set to 1 with mdb_load');

# format 1 on purpose: "apikeyctl check" at the end would fail
$t->no_check();

$t->start();

is($t->get('/', 'X-API-Key' => $key)->{status}, 503, 'nginx: format 1 is 503');

for (1 .. 5) {
    $t->get('/', 'X-API-Key' => $key);
}

my @lines = $t->error_log() =~ /^.*format version 1.*$/mg;
is(scalar @lines, 1, 'nginx: format 1 logged once');
my $want = qq{apikey database "$db" is not usable: database has format }
           . qq{version 1, whose keys were hashed another way: make a new }
           . qq{database with "apikeyctl init" and import or issue the keys }
           . qq{again (secret "$prefix/apikey.secret")};
like($lines[0] // '', qr/\[crit\] .*\Q$want\E$/, 'nginx: format 1 message');

($rc, $out, $err) = $t->ctl('list');
is($rc, 1, 'apikeyctl: format 1 exit code');
like($err, qr/format version 1, whose keys were hashed another way/,
     'apikeyctl: format 1 message');

$t->stop();

$t->check_log();

done_testing();
