#!/usr/bin/perl

# Tests the rotation links between records as the writes keep them: a
# link always names a key in the database, since revoke removes the
# links to the key it revokes in its own transaction, so an id given
# again to another key is never taken for the key revoked (the red
# team's sequences); rotate refuses an expired key, and expire a time at
# or before not_before; a link left by an older apikeyctl (made with
# mdb_load) neither blocks rotate nor shows as a live key.  check runs
# after every write.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use Time::Local qw(timegm);

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $json = JSON::PP->new();

my ($rc, $out, $err, $before, $s);

# "check" after each write; skipped only while check is a stub

sub check_ok {
    my ($name, %opts) = @_;

    my ($rc, $out, $err) = $t->ctl(\%opts, 'check');

    SKIP: {
        skip 'apikeyctl check is not built yet', 1
            if $rc == 1 && $err =~ /not built yet/;

        is($rc, 0, "check after $name") or diag($out . $err);
    }
}

sub show {
    my ($id, %opts) = @_;

    my ($rc, $out, $err) = $t->ctl(\%opts, 'show', $id, '--format', 'json');

    # a key missing fails the test that reads it, not the whole file

    return $rc == 0 ? $json->decode($out) : { replaces => "(show: $err)" };
}

# "replaces, replaced_by" of a key, "-" for none

sub links {
    my ($id, %opts) = @_;

    my $s = show($id, %opts);

    return ($s->{replaces} // '-') . ', ' . ($s->{replaced_by} // '-');
}

sub rfc3339 {
    my ($s) = @_;

    return 0 unless defined $s
        && $s =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z$/;

    return timegm($6, $5, $4, $3, $2 - 1, $1);
}

sub unchanged {
    my ($name) = @_;

    is($t->ctl_ok('export'), $before, "$name changes nothing");
}

$t->init_db();

# red team, 1: a's link to the revoked b is not taken for the new b

$t->gen('--id', 'a', '--subject', 'alice');
$t->ctl_ok('rotate', 'a', '--new-id', 'b');
is(links('a'), '-, b', 'a rotated to b');

($rc, $out, $err) = $t->ctl('revoke', 'b');
is($rc, 0, 'revoke b exit code');
is($out, qq{revoked "b"\n}, 'revoke b output');
is($err, '', 'revoke b stderr');
is(links('a'), '-, -', 'revoke b: the link to it is gone');
check_ok('revoke b');

$t->gen('--id', 'b', '--subject', 'other');
is(links('a'), '-, -', 'a new b: a is not replaced by it');
is(links('b'), '-, -', 'a new b: it replaces nothing');
like($t->ctl_ok('show', 'a'), qr/^replaces: -\nreplaced_by: -\n\z/m,
     'a new b: show a names no key');
check_ok('gen of an id used before');

($rc, $out, $err) = $t->ctl('rotate', 'a', '--new-id', 'a2');
is($rc, 0, 'rotate a again exit code');
is($err, '', 'rotate a again stderr');
is(links('a'), '-, a2', 'rotate a again: linked to the new key');
is(links('a2'), 'a, -', 'rotate a again: the new key links back');
is(show('b')->{subject}, 'other', 'rotate a again: b left alone');
check_ok('rotate a again');

# red team, 2: B replaced the revoked A, then is rotated to a new A

$t->gen('--id', 'A');
$t->ctl_ok('rotate', 'A', '--new-id', 'B');
$t->ctl_ok('revoke', 'A');
is(links('B'), '-, -', 'revoke A: B no longer replaces it');

($rc, $out, $err) = $t->ctl('rotate', 'B', '--new-id', 'A');
is($rc, 0, 'rotate B to a new A exit code');
is(links('B'), '-, A', 'rotate B to a new A: B only replaced by A');
is(links('A'), 'B, -', 'rotate B to a new A: A replaces B');
check_ok('rotate B to a new A');

# the middle of a chain: both neighbours lose their link to it

$t->gen('--id', 'x');
$t->ctl_ok('rotate', 'x', '--new-id', 'y');
$t->ctl_ok('rotate', 'y', '--new-id', 'z');
$t->ctl_ok('revoke', 'y');
is(links('x'), '-, -', 'chain: the first key is no longer replaced');
is(links('z'), '-, -', 'chain: the last key no longer replaces');
check_ok('revoke of the middle of a chain');

# several in one command, linked to each other and to a key that stays,
# from standard input and with --ignore-missing

$t->gen('--id', 'p');
$t->ctl_ok('rotate', 'p', '--new-id', 'q');
$t->ctl_ok('rotate', 'q', '--new-id', 'r');
$t->ctl_ok('rotate', 'r', '--new-id', 's');

($rc, $out, $err) = $t->ctl({ input => "q\nnope\nr\n" }, 'revoke',
                            '--ignore-missing', '-');
is($rc, 0, 'revoke of linked keys together exit code');
is($out, qq{revoked "q"\nrevoked "r"\n}, 'revoke together output');
is($err, qq{apikeyctl: revoke: no key with id "nope", ignored\n},
   'revoke together stderr');
is(links('p'), '-, -', 'revoke together: the key before them');
is(links('s'), '-, -', 'revoke together: the key after them');
check_ok('revoke of linked keys together');

# a revoke refused: nothing changed, links included

$t->ctl_ok('rotate', 's', '--new-id', 't');
$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('revoke', 't', 'nope');
is($rc, 3, 'revoke with an unknown id exit code');
is($out, '', 'revoke with an unknown id prints nothing');
is($err, qq{apikeyctl: revoke: no key with id "nope"\n},
   'revoke with an unknown id message');
is(links('s'), '-, t', 'revoke refused: the link stays');
is(links('t'), 's, -', 'revoke refused: the link back stays');
unchanged('revoke refused');

# both keys of a pair in one command

($rc, $out) = $t->ctl('revoke', 's', 't');
is($rc, 0, 'revoke of a pair exit code');
is($out, qq{revoked "s"\nrevoked "t"\n}, 'revoke of a pair output');
check_ok('revoke of a pair');

# rotate of an expired key: refused, whatever the key links to

$t->gen('--id', 'e');
$t->ctl_ok('expire', 'e', '--at', '2020-01-01T00:00:00Z');
$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('rotate', 'e', '--new-id', 'e2');
is($rc, 3, 'rotate expired exit code');
is($out, '', 'rotate expired prints nothing');
is($err, 'apikeyctl: rotate: key "e" expired at 2020-01-01T00:00:00Z: '
         . 'rotation never extends a lifetime; "apikeyctl expire e --at '
         . 'WHEN" gives it a new expiry first, or gen a new key' . "\n",
   'rotate expired message');
unchanged('rotate expired');

$t->ctl_ok('disable', 'e');
($rc, $out, $err) = $t->ctl('rotate', 'e');
is($rc, 3, 'rotate expired and disabled exit code');
like($err, qr/^apikeyctl: rotate: key "e" is disabled: /,
     'rotate expired and disabled: enable it first');
$t->ctl_ok('enable', 'e');

$t->ctl_ok('expire', 'e', '--at', '7d');
my $e_expires = show('e')->{expires};

($rc, $out, $err) = $t->ctl('rotate', 'e', '--new-id', 'e2', '--grace', '0',
                            '--format', 'json');
is($rc, 0, 'rotate after a new expiry exit code');
is((eval { $json->decode($out) } // {})->{expires}, $e_expires,
   'rotate after a new expiry: the new key ends then');
check_ok('rotate after a new expiry');

# an expired key already rotated: told which key to rotate

$before = $t->ctl_ok('export');

($rc, $out, $err) = $t->ctl('rotate', 'e');
is($rc, 3, 'rotate rotated and expired exit code');
is($err, qq{apikeyctl: rotate: key "e" was already rotated to "e2"; }
         . qq{rotate "e2"\n}, 'rotate rotated and expired message');
unchanged('rotate rotated and expired');

# expire at or before not_before: refused, as gen refuses it

$t->gen('--id', 'nb', '--not-before', '2040-01-01T00:00:00Z');
$before = $t->ctl_ok('export');

for my $at ('now', '2040-01-01T00:00:00Z', '2039-12-31T23:59:59Z') {
    ($rc, $out, $err) = $t->ctl('expire', 'nb', '--at', $at);
    is($rc, 3, "expire --at $at before not_before exit code");
    is($out, '', "expire --at $at before not_before prints nothing");
    is($err, 'apikeyctl: expire: key "nb" is not valid before '
             . '2040-01-01T00:00:00Z: it cannot expire at or before that; '
             . '"apikeyctl revoke nb" ends it now' . "\n",
       "expire --at $at before not_before message");
}

unchanged('expire before not_before');

($rc, $out) = $t->ctl('expire', 'nb', '--at', '2040-01-01T00:00:01Z');
is($rc, 0, 'expire a second after not_before exit code');
check_ok('expire after not_before');

# rotate --grace 0 of a key valid from now: the old key still expires
# after it became valid, a second later when in the same second

$t->gen('--id', 'fresh', '--not-before', 'now');
($rc, $out, $err) = $t->ctl('rotate', 'fresh', '--new-id', 'fresh2',
                            '--grace', '0');
is($rc, 0, 'rotate --grace 0 of a key valid from now exit code')
    or diag($err);
$s = show('fresh');
ok($s->{expires} gt $s->{not_before},
   'rotate --grace 0: expires after not_before')
    or diag("not_before $s->{not_before}, expires $s->{expires}");
ok(rfc3339($s->{expires}) <= time() + 1,
   'rotate --grace 0: the old key ends within the second')
    or diag("expires $s->{expires}, now " . time());
check_ok('rotate --grace 0 of a key valid from now');

# a database from an apikeyctl that kept links on revoke: the link to a
# reused id is not a rotation

SKIP: {
    skip 'no mdb_load (lmdb-utils)', 9 unless -x '/usr/bin/mdb_load';

    my %old = (db => $t->prefix() . '/old');

    $t->init_db(\%old);
    $t->ctl_ok(\%old, 'gen', '--id', 'k');
    $t->ctl_ok(\%old, 'gen', '--id', 'other');

    # k's record, as it was, with replaced_by "other" added

    my $csv = $t->ctl_ok(\%old, 'export');
    my ($hex) = $csv =~ /^"([0-9a-f]{64})","k"/m or die "no hash:\n$csv";
    my ($rec) = `/usr/bin/mdb_dump -s keys $old{db}`
                =~ /^ \Q$hex\E\n ([0-9a-f]+)\n/m or die 'mdb_dump';

    $rec = pack('H*', $rec) . pack('v/a*', '') . pack('v/a*', 'other');

    open my $fh, '|-', "/usr/bin/mdb_load -s keys $old{db}" or die;
    print $fh "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n"
              . " $hex\n " . unpack('H*', $rec) . "\nDATA=END\n";
    close $fh;
    die 'mdb_load failed' if $?;

    is(links('k', %old), '-, other', 'old database: the link as it was');

    $s = show('k', %old);
    ok(!$s->{replaced_by_exists}, 'old database: json, not the key linked');
    like($t->ctl_ok(\%old, 'show', 'k'),
         qr/^replaced_by: other \(no longer in the database\)$/m,
         'old database: text, not the key linked');

    ($rc, $out) = $t->ctl(\%old, 'check');
    is($rc, 1, 'old database: check exit code');
    my $problem = 'problem: key "k" is replaced by "other", which replaces '
                  . 'no key';
    like($out, qr/^\Q$problem\E$/m, 'old database: check says so');

    ($rc, $out, $err) = $t->ctl(\%old, 'rotate', 'k', '--new-id', 'k2');
    is($rc, 0, 'old database: rotate exit code') or diag($err);
    is(links('k', %old), '-, k2', 'old database: the new link replaces it');
    is(links('other', %old), '-, -', 'old database: the other key untouched');
    check_ok('rotate in an old database', %old);
}

done_testing();
