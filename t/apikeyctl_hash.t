#!/usr/bin/perl

# Tests apikeyctl hash: the keyed hash of a key read from standard input,
# the one export shows in its hash column and import takes, equal to
# Python's hashlib.blake2b(key, key=secret, digest_size=32); it needs the
# secret file only; an empty or malformed key and a key on the command
# line are refused without being shown.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();

$t->init_db();

my ($rc, $out, $err);

# the hash of a generated key is the one export shows

my $key = $t->gen('--id', 'gen1');
my ($stored) = $t->ctl_ok('export', '--format', 'csv')
               =~ /^"?([0-9a-f]{64})"?,"?gen1"?,/m;

($rc, $out, $err) = $t->ctl({ input => "$key\n" }, 'hash');
is($rc, 0, 'hash exit code');
is($out, "$stored\n", 'hash is the hash column of export');
is($err, '', 'hash says nothing on stderr');

($rc, $out) = $t->ctl({ input => "$key\r\n" }, 'hash');
is($out, "$stored\n", 'hash strips a trailing crlf');

($rc, $out) = $t->ctl({ input => $key }, 'hash');
is($out, "$stored\n", 'hash of a key without a newline');

($rc, $out) = $t->ctl({ input => "$key\nsecond line\n" }, 'hash');
is($out, "$stored\n", 'hash reads the first line only');

# the secret file is enough: no database

($rc, $out, $err) = $t->ctl({ input => "$key\n", db => "$prefix/none" },
                            'hash');
is($rc, 0, 'hash without a database exit code');
is($out, "$stored\n", 'hash without a database');
ok(!-e "$prefix/none", 'hash makes no database');

# a hash printed by hash imports as the key

my $plain = 'plain-key-for-hash-0123';

($rc, $out) = $t->ctl({ input => "$plain\n" }, 'hash');
chomp(my $h = $out);
like($h, qr/^[0-9a-f]{64}$/, 'hash of a plain key is lowercase hex');

$t->ctl_ok({ input => "hash,id\n$h,plain1\n" }, 'import', '-');
is($t->ctl_ok({ input => "$plain\n" }, 'verify', '-'),
   "valid id=plain1\n", 'imported hash matches the key');

# Python computes the same

SKIP: {
    my $python = '/usr/bin/python3';

    skip("no $python (python3) to compute the hash", 2) unless -x $python;

    for my $k ($key, 'z' x 256) {
        write_file("$prefix/py.key", $k);

        my $py = `$python -c '
import hashlib, sys
secret = bytes.fromhex(open(sys.argv[1]).read().strip())
key = open(sys.argv[2], "rb").read()
print(hashlib.blake2b(key, key=secret, digest_size=32).hexdigest())
' $prefix/apikey.secret $prefix/py.key`;

        unlink "$prefix/py.key";

        ($rc, $out) = $t->ctl({ input => "$k\n" }, 'hash');
        is($out, $py, 'hash is hashlib.blake2b, ' . length($k) . ' bytes');
    }
}

# refused: empty, malformed, a key on the command line, never shown

($rc, $out, $err) = $t->ctl({ input => "" }, 'hash');
is($rc, 3, 'empty input exit code');
is($out, '', 'empty input prints nothing');
is($err, "apikeyctl: hash: no key on standard input\n",
   'empty input message');

($rc, $out, $err) = $t->ctl({ input => "\n" }, 'hash');
is($rc, 3, 'empty line exit code');

($rc, $out, $err) = $t->ctl({ input => "short\n" }, 'hash');
is($rc, 3, 'short key exit code');
is($out, '', 'short key prints nothing');
like($err, qr/^apikeyctl: hash: key is malformed \(8 to 256 printable/,
     'short key message');
unlike($err, qr/short/, 'short key not shown');

($rc, $out, $err) = $t->ctl({ input => ('k' x 257) . "\n" }, 'hash');
is($rc, 3, 'long key exit code');
unlike($err, qr/kkkk/, 'long key not shown');

($rc, $out, $err) = $t->ctl({ input => "has space key\n" }, 'hash');
is($rc, 3, 'key with a space exit code');
unlike($err, qr/has space/, 'key with a space not shown');

my $bad = $key;
substr($bad, -1, 1) = substr($bad, -1, 1) eq 'a' ? 'b' : 'a';

($rc, $out, $err) = $t->ctl({ input => "$bad\n" }, 'hash');
is($rc, 3, 'bad checksum exit code');
like($err, qr/wrong checksum/, 'bad checksum message');
unlike($err, qr/\Q$bad\E/, 'bad checksum key not shown');

($rc, $out, $err) = $t->ctl({ input => "$key\n" }, 'hash', $key);
is($rc, 2, 'key argument exit code');
is($out, '', 'key argument prints nothing');
like($err, qr/^apikeyctl: hash: argument 1 holds an API key \(not shown\); "hash" reads the key from standard input\n/,
     'key argument message');
unlike($err, qr/\Q$key\E/, 'key argument not shown');

($rc, $out, $err) = $t->ctl({ input => "$plain\n" }, 'hash', $plain);
is($rc, 2, 'plain key argument exit code');
like($err, qr/^apikeyctl: hash: takes no argument \(not shown\); the key is read from standard input\n/,
     'plain key argument message');
unlike($err, qr/\Q$plain\E/, 'plain key argument not shown');

($rc, $out, $err) = $t->ctl({ input => "$key\n" }, 'hash', '-');
is($rc, 2, 'dash argument exit code');

($rc, $out, $err) = $t->ctl({ input => "$key\n" }, 'hash', '--nope');
is($rc, 2, 'bad option exit code');
like($err, qr/^apikeyctl: hash: invalid option "--nope"\n/,
     'bad option message');

# a missing secret file

($rc, $out, $err) = $t->ctl({ input => "$key\n", secret => "$prefix/nosecret" },
                            'hash');
is($rc, 1, 'missing secret exit code');
like($err, qr/^apikeyctl: secret "\Q$prefix\E\/nosecret": /,
     'missing secret message');
unlike($err, qr/\Q$key\E/, 'missing secret: key not shown');

# help

($rc, $out) = $t->ctl('--help');
like($out, qr/^ *apikeyctl hash$/m, 'help lists hash');

done_testing();
