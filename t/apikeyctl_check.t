#!/usr/bin/perl

# Tests apikeyctl check on real databases: clean ones exit 0; each kind
# of damage, made through LMDB itself with mdb_load, is named on its own
# "problem:" line and exits 1: an ids entry pointing at a missing key, a
# key whose id has no ids entry, ids entries pointing at a key of
# another id, a record that does not decode, a key of the wrong length,
# broken rotation links, damaged meta entries, another secret, a
# truncated data file.  Never a full hash in the output.  A link names a
# key in the database (revoke removes the links to the key it revokes),
# and a record's times are in range and in order.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

plan(skip_all => 'no mdb_load (lmdb-utils)') unless -x '/usr/bin/mdb_load';

my $prefix = $t->prefix();
my ($rc, $out, $err);

# a fresh database with keys "alice" and "bob"; returns its directory

my $n = 0;

sub fresh {
    my $db = shift // "$prefix/db-" . ++$n;

    $t->init_db({ db => $db });
    $t->ctl_ok({ db => $db }, 'gen', '--id', $_) for qw(alice bob);

    return $db;
}

sub check {
    my ($db, @opts) = @_;
    return $t->ctl({ db => $db, @opts }, 'check');
}

# the hash of a key by id, from export

sub hash_of {
    my ($db, $id) = @_;

    my $csv = $t->ctl_ok({ db => $db }, 'export', '--format', 'csv');
    my ($hex) = $csv =~ /^"([0-9a-f]{64})","\Q$id\E"/m
        or die "no hash for $id in:\n$csv";

    return pack('H*', $hex);
}

# records written as apikey_core.c encodes them (AKC_RECORD_VERSION 1)

sub record {
    my (%r) = @_;

    my $s = pack('CCvq<q<q<', 1, $r{flags} // 0, 0, $r{created} // time(),
                 $r{not_before} // 0, $r{expires} // 0);

    my @f = ($r{id}, '', '', '', $r{hint} // 'ak_test...');
    push @f, $r{replaces} // '', $r{replaced_by} // ''
        if defined $r{replaces} || defined $r{replaced_by};

    $s .= pack('v/a*', $_) for @f;

    return $s;
}

# pairs written into a sub-database with mdb_load, as they are

sub load {
    my ($db, $sub, @pairs) = @_;

    my $in = "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n";

    while (my ($k, $v) = splice(@pairs, 0, 2)) {
        $in .= ' ' . unpack('H*', $k) . "\n " . unpack('H*', $v) . "\n";
    }

    open my $fh, '|-', "/usr/bin/mdb_load -s $sub $db"
        or die "mdb_load: $!";
    print $fh "${in}DATA=END\n";
    close $fh;

    die "mdb_load -s $sub $db failed" if $?;
}

# a linked key added the way the tools would add it: keys and ids

sub add {
    my ($db, $hash, %r) = @_;

    load($db, 'keys', $hash, record(%r));
    load($db, 'ids', $r{id}, $hash);
}

sub problems {
    my ($out) = @_;
    return join "\n", $out =~ /^problem: (.*)$/mg;
}

my $h1 = "\x11" x 32;
my $h2 = "\x22" x 32;
my $h3 = "\x33" x 32;
my $h4 = "\x44" x 32;
my $h5 = "\x55" x 32;

# a clean database: every kind of key there is

my $clean = fresh();
my $key = $t->ctl_ok({ db => $clean }, 'gen', '--id', 'old');
chomp $key;
$t->ctl_ok({ db => $clean }, 'expire', 'old', '--at', '2020-01-01T00:00:00Z');
$t->ctl_ok({ db => $clean }, 'gen', '--id', 'off');
$t->ctl_ok({ db => $clean }, 'disable', 'off');
$t->ctl_ok({ db => $clean }, 'gen', '--id', 'gone');
$t->ctl_ok({ db => $clean }, 'revoke', 'gone');
$t->ctl_ok({ db => $clean }, 'gen', '--id', 'later', '--not-before', '30d');
$t->ctl_ok({ db => $clean, input => "key,id\nimported-key-0001,plain\n" },
           'import', '-');

($rc, $out, $err) = check($clean);
is($rc, 0, 'clean: exit code');
is($err, '', 'clean: nothing on stderr');
like($out, qr/^data file: \d+ bytes\nmeta page: \d+ pages of \d+ bytes \(\d+ bytes\)\n/,
     'clean: the data file against the meta page');
like($out, qr/^format: 2\nsecret: matches the fingerprint\ngeneration: \d+\n/m,
     'clean: format, secret, generation');
like($out, qr/^changed: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m, 'clean: changed');
like($out, qr/\nkeys: 6\nids: 6\nproblems: 0\n\z/, 'clean: summary');
unlike($out, qr/^problem:/m, 'clean: no problem');
unlike($out, qr/\Q$key\E/, 'clean: no key in the output');

# rotation links as rotate writes them, and after revoke of either key

SKIP: {
    my $db = fresh();

    ($rc, $out, $err) = $t->ctl({ db => $db }, 'rotate', 'alice');
    skip "rotate not built yet: $err", 2 if $rc != 0;

    ($rc, $out) = check($db);
    is($rc, 0, 'after rotate: exit code') or diag($out);

    $t->ctl_ok({ db => $db }, 'revoke', 'alice');

    ($rc, $out) = check($db);
    is($rc, 0, 'after rotate and revoke of the old key: exit code')
        or diag($out);
}

{
    my $db = fresh();

    add($db, $h1, id => 'r-old', replaced_by => 'r-new');
    add($db, $h2, id => 'r-new', replaces => 'r-old');
    add($db, $h3, id => 'r-newer', replaces => 'r-new2', replaced_by => 'r-3');
    add($db, $h4, id => 'r-new2', replaced_by => 'r-newer');
    add($db, $h5, id => 'r-3', replaces => 'r-newer');

    ($rc, $out) = check($db);
    is($rc, 0, 'linked pairs and a chain: exit code') or diag($out);
    like($out, qr/^keys: 7\nids: 7\nproblems: 0$/m,
         'linked pairs: summary');
}

# links to ids that are not in the database: left by an apikeyctl that
# kept them on revoke, or by damage

{
    my $db = fresh();
    $t->no_check($db);

    add($db, $h3, id => 'r-newer', replaces => 'revoked-id');
    add($db, $h4, id => 'r-next', replaced_by => 'revoked-id2');

    ($rc, $out, $err) = check($db);
    is($rc, 1, 'links to missing ids: exit code');
    is(problems($out), join("\n",
       'key "r-newer" replaces "revoked-id", which is not in the database',
       'key "r-next" is replaced by "revoked-id2", which is not in the '
       . 'database'),
       'links to missing ids: problems');
    like($out, qr/^keys: 4\nids: 4\nproblems: 2\n\z/m,
         'links to missing ids: summary');
    is($err, '', 'links to missing ids: nothing on stderr');
}

# times out of range, or out of order (not among the db-* whose output
# is searched for hashes: the times are long numbers)

{
    my $db = fresh("$prefix/times");
    $t->no_check($db);

    my $max = 253402300799;     # 9999-12-31T23:59:59Z

    add($db, "\x61" x 32, id => 't-order', not_before => 2000000000,
        expires => 1900000000);
    add($db, "\x62" x 32, id => 't-same', not_before => 2000000000,
        expires => 2000000000);
    add($db, "\x63" x 32, id => 't-huge', expires => 9223372036854775807);
    add($db, "\x64" x 32, id => 't-past-9999', not_before => $max + 1);
    add($db, "\x65" x 32, id => 't-negative', expires => -1,
        not_before => -9223372036854775808);
    add($db, "\x66" x 32, id => 't-last', not_before => $max - 1,
        expires => $max);
    add($db, "\x67" x 32, id => 't-epoch', not_before => 1, expires => 2);
    add($db, "\x68" x 32, id => 't-created', created => $max + 1);

    ($rc, $out, $err) = check($db);
    is($rc, 1, 'times: exit code');
    is(problems($out), join("\n",
       'key "t-order": expires 2030-03-17T17:46:40Z is not after not_before '
       . '2033-05-18T03:33:20Z',
       'key "t-same": expires 2033-05-18T03:33:20Z is not after not_before '
       . '2033-05-18T03:33:20Z',
       'key "t-huge": expires is after 9999-12-31T23:59:59Z '
       . '(9223372036854775807)',
       'key "t-past-9999": not_before is after 9999-12-31T23:59:59Z '
       . '(253402300800)',
       'key "t-negative": not_before is negative (-9223372036854775808)',
       'key "t-negative": expires is negative (-1)'),
       'times: problems, the last second and the first ones fine');
    like($out, qr/^keys: 10\nids: 10\nproblems: 6\n\z/m, 'times: summary');
    is($err, '', 'times: nothing on stderr');
}

# an ids entry pointing at a key that does not exist

{
    my $db = fresh();
    $t->no_check($db);

    load($db, 'ids', 'ghost', $h1);

    ($rc, $out, $err) = check($db);
    is($rc, 1, 'dangling id: exit code');
    is(problems($out),
       'ids entry "ghost" points at a key that does not exist (11111111...)',
       'dangling id: problem');
    like($out, qr/^keys: 2\nids: 3\nproblems: 1\n\z/m, 'dangling id: summary');
    is($err, '', 'dangling id: nothing on stderr');
}

# a key whose id has no ids entry

{
    my $db = fresh();
    $t->no_check($db);

    load($db, 'keys', $h2, record(id => 'orphan'));

    ($rc, $out) = check($db);
    is($rc, 1, 'orphan key: exit code');
    is(problems($out), 'key "orphan" (22222222...): no ids entry for its id',
       'orphan key: problem');
}

# an ids entry pointing at the key of another id; an id whose entry
# points at another key

{
    my $db = fresh();
    $t->no_check($db);

    my $alice = hash_of($db, 'alice');
    my $hex = unpack('H8', $alice);

    load($db, 'ids', 'alias', $alice);

    ($rc, $out) = check($db);
    is($rc, 1, 'alias id: exit code');
    is(problems($out),
       qq{ids entry "alias" points at the key of id "alice" ($hex...)},
       'alias id: problem');

    load($db, 'ids', 'bob', $alice);

    ($rc, $out) = check($db);
    is($rc, 1, 'swapped id: exit code');
    like(problems($out),
         qr/^key "bob" \([0-9a-f]{8}\.\.\.\): the ids entry of its id points at another key \(\Q$hex\E\.\.\.\)$/m,
         'swapped id: the key named');
    like(problems($out),
         qr/^ids entry "bob" points at the key of id "alice" \(\Q$hex\E\.\.\.\)$/m,
         'swapped id: the ids entry named');
    like($out, qr/^problems: 3$/m, 'swapped id: three problems');
}

# a record that does not decode

{
    my $db = fresh();
    $t->no_check($db);

    my $alice = hash_of($db, 'alice');
    my $hex = unpack('H8', $alice);

    load($db, 'keys', $alice, "\x01\xff\x00");

    ($rc, $out, $err) = check($db);
    is($rc, 1, 'bad record: exit code');
    is(problems($out), "key $hex...: its record (3 bytes) does not decode",
       'bad record: problem');
    like($out, qr/^keys: 2\nids: 2\nproblems: 1$/m, 'bad record: summary');

    # a record cut short by a byte, and one of a version to come

    my $rec = record(id => 'cut');
    load($db, 'keys', $h3, substr($rec, 0, -1));
    load($db, 'ids', 'cut', $h3);
    load($db, 'keys', $h4, "\x02" . substr(record(id => 'v2'), 1));

    ($rc, $out) = check($db);
    is($rc, 1, 'cut record: exit code');
    like(problems($out),
         qr/^key 33333333\.\.\.: its record \(\d+ bytes\) does not decode$/m,
         'cut record: problem');
    like(problems($out),
         qr/^key 44444444\.\.\.: its record \(\d+ bytes\) does not decode$/m,
         'record version 2: problem');
}

# a key of the wrong length

{
    my $db = fresh();
    $t->no_check($db);

    load($db, 'keys', "\x66" x 31, record(id => 'short'));

    ($rc, $out) = check($db);
    is($rc, 1, 'short key: exit code');
    is(problems($out), 'key 66666666...: 31 bytes, where a hash is 32',
       'short key: problem');

    load($db, 'ids', 'short', "\x66" x 31);

    ($rc, $out) = check($db);
    is($rc, 1, 'short hash in ids: exit code');
    like(problems($out),
         qr/^ids entry "short": 31 bytes, where a hash is 32$/m,
         'short hash in ids: problem');
}

# rotation links that do not pair

{
    my $db = fresh();
    $t->no_check($db);

    add($db, $h1, id => 'a-old', replaced_by => 'a-new');
    add($db, $h2, id => 'a-new');
    add($db, $h3, id => 'b-new', replaces => 'b-old');
    add($db, $h4, id => 'b-old', replaced_by => 'b-other');
    add($db, $h5, id => 'self', replaced_by => 'self');

    ($rc, $out) = check($db);
    is($rc, 1, 'broken links: exit code');
    is(problems($out), join("\n",
       'key "a-old" is replaced by "a-new", which replaces no key',
       'key "b-new" replaces "b-old", which is replaced by "b-other"',
       'key "b-old" is replaced by "b-other", which is not in the database',
       'key "self" is replaced by itself'),
       'broken links: problems');
}

# meta entries

{
    my $db = fresh();
    $t->no_check($db);

    load($db, 'meta', 'generation', "\x01\x02\x03",
                      'changed', "\0" x 8);

    ($rc, $out) = check($db);
    is($rc, 1, 'meta: exit code');
    is(problems($out), join("\n",
       'meta "generation" is not an 8-byte number',
       'meta "changed" is not a time (0)'),
       'meta: problems');
    like($out, qr/^keys: 2$/m, 'meta: the keys are checked still');

    load($db, 'meta', 'fingerprint', 'short');

    ($rc, $out) = check($db);
    like(problems($out), qr/^meta "fingerprint" is 5 bytes, not 32$/m,
         'meta: fingerprint of the wrong length');

    load($db, 'meta', 'format', pack('Q<', 3));

    ($rc, $out) = check($db);
    is($rc, 1, 'format 3: exit code');
    is(problems($out),
       'format version 3 is unknown to this apikeyctl, which reads 2',
       'format 3: problem');
    unlike($out, qr/^keys:/m, 'format 3: records left alone');
}

# another secret

{
    my $db = fresh();

    write_file("$prefix/other.secret", unpack('H*', "\x5a" x 32) . "\n");

    ($rc, $out, $err) = check($db, secret => "$prefix/other.secret");
    is($rc, 1, 'another secret: exit code');
    like($out, qr/^secret: does not match the fingerprint$/m,
         'another secret: said');
    is(problems($out), 'database was made with another secret',
       'another secret: problem');
    like($out, qr/^keys: 2\nids: 2\nproblems: 1$/m,
         'another secret: the records are checked still');

    ($rc) = check($db);
    is($rc, 0, 'the right secret: exit code');
}

# a truncated data file: a problem, or an error, never a crash

{
    my $db = "$prefix/db-big";

    $t->init_db({ db => $db });
    $t->ctl_ok({ db => $db }, 'gen', '--count', '2000');
    $t->no_check($db);

    my $size = -s "$db/data.mdb";
    cmp_ok($size, '>', 16 * 4096, 'truncated: a file of many pages');

    truncate("$db/data.mdb", 4 * 4096) or die "truncate: $!";

    ($rc, $out, $err) = check($db);
    is($rc, 1, 'truncated: exit code');
    like($out, qr/^data file: 16384 bytes$/m, 'truncated: the file size');
    like($out, qr/^meta page: (\d+) pages of 4096 bytes \(\d+ bytes\)$/m,
         'truncated: the pages claimed');

    # a problem when the free list is still in the file, else the
    # message of SIGBUS as the first page past the end is read

    like(problems($out) . $err,
         qr/^(?:data\.mdb is shorter than the pages it claims|apikeyctl: \Q$db\E: data\.mdb or lock\.mdb ends before a page read from it)/,
         'truncated: said');

    truncate("$db/data.mdb", 4096) or die "truncate: $!";

    ($rc, $out, $err) = check($db);
    is($rc, 1, 'truncated to one page: exit code');
    like($err, qr/data\.mdb is shorter than the pages it claims/,
         'truncated to one page: message');
}

# never a full hash, whatever the damage

unlike(join('', map { (check($_))[1] } glob("$prefix/db-*")),
       qr/[0-9a-f]{16}/, 'no hash beyond its first bytes in any output');

# usage

($rc, $out, $err) = $t->ctl({ db => $clean }, 'check', 'extra');
is($rc, 2, 'an argument: exit code');
like($err, qr/^apikeyctl: check: unexpected argument "extra"\nusage:\n  apikeyctl check\n/,
     'an argument: message');

($rc, $out, $err) = $t->ctl({ db => $clean }, 'check', '--format', 'json');
is($rc, 2, 'an option: exit code');
like($err, qr/invalid option "--format"/, 'an option: message');

($rc, $out, $err) = $t->ctl({ db => "$prefix/none" }, 'check');
is($rc, 1, 'no database: exit code');
like($err, qr/does not exist/, 'no database: message');
is($out, '', 'no database: nothing on stdout');

done_testing();
