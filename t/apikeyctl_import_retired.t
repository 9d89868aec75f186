#!/usr/bin/perl

# Tests for import and the keys it does not own:
#
# - a retired key (rotate marked it, whatever its links now) keeps the
#   earlier of its stored end and the row's: an import, plain or
#   --replace, may shorten
#   the grace of a rotated key but never lift its end, and a key whose
#   grace is over stays expired;
# - import --replace keeps the creation time of a key that stays, unless
#   the row has a "created" column, as a plain import does;
# - the summary is one line on standard output, the same words with and
#   without --replace and --dry-run, "1 key", and nothing on standard
#   error but the rows rejected.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();

$t->init_db();

my ($rc, $out, $err);

sub summary {
    my ($a, $u, $s, $r, $j, $dry) = @_;
    my $n = $a + $u + $s;

    return ($dry ? 'dry run: would import' : 'imported')
           . " $n key" . ($n == 1 ? '' : 's') . ": "
           . "$a added, $u updated, $s unchanged, $r removed, $j rejected"
           . ($dry ? '; nothing was changed' : '') . "\n";
}

sub import_ok {
    my ($name, $data, @flags) = @_;

    my $file = "$prefix/$name" . ($data =~ /^\{/ ? '.jsonl' : '.csv');
    write_file($file, $data);

    my @r = $t->ctl('import', @flags, $file);
    is($r[0], 0, "$name: exit code") or diag($r[2]);

    return @r;
}

sub check_ok {
    my ($name) = @_;

    my ($crc, $cout) = $t->ctl('check');

    SKIP: {
        skip('check is not built yet', 1) if $cout =~ /not built yet/;
        is($crc, 0, "$name: check") or diag($cout);
    }
}

sub field {
    my ($id, $name) = @_;

    my ($v) = $t->ctl_ok('show', $id) =~ /^\Q$name\E: (.*)$/m;
    return $v;
}

sub status {
    my ($key) = @_;

    my (undef, $o) = $t->ctl({ input => "$key\n" }, 'verify', '-');
    $o =~ s/ id=.*//s;
    return $o;
}

# the exported row of an id: its hash, quoted as export writes it

sub hash_of {
    my ($id) = @_;

    my ($h) = $t->ctl_ok('export') =~ /^("[0-9a-f]{64}"),"\Q$id\E",/m;
    return $h;
}

# a rotated key, in its grace period

my %key;
$key{L1} = $t->gen('--id', 'L1', '--subject', 's');
$key{K} = $t->gen('--id', 'K');
$key{L2} = $t->ctl_ok('rotate', 'L1', '--new-id', 'L2');
chomp $key{L2};

my $end = field('L1', 'expires');
like($end, qr/^\d{4}-\d\d-\d\dT/, 'rotate: L1 has an end');
is(field('L1', 'replaced_by'), 'L2', 'rotate: L1 replaced by L2');

# the red team's row: hash and id from export, no expires

($rc, $out, $err) = import_ok('no-expires', "hash,id\n" . hash_of('L1')
                              . ",L1\n");
is($out, summary(0, 1, 0, 0, 0), 'no expires: 1 key updated');
is($err, '', 'no expires: nothing on stderr');
is(field('L1', 'expires'), $end, 'no expires: the end kept');
is(field('L1', 'replaced_by'), 'L2', 'no expires: still replaced by L2');
check_ok('no expires');

# a later end, or an empty expires, by key: the end kept

($rc, $out) = import_ok('later', "key,id,subject,expires\n"
                        . "$key{L1},L1,s,2099-01-01T00:00:00Z\n");
is(field('L1', 'expires'), $end, 'a later end: the end kept');
is($out, summary(0, 1, 0, 0, 0), 'a later end: the subject updated');

($rc, $out) = import_ok('empty', "key,id,subject,expires\n$key{L1},L1,s,\n");
is($out, summary(0, 0, 1, 0, 0), 'an empty expires: unchanged');
is(field('L1', 'expires'), $end, 'an empty expires: the end kept');

($rc, $out) = import_ok('later-jsonl', qq({"key": "$key{L1}", "id": "L1", )
                        . qq("subject": "s", "expires": "2099-01-01T00:00:00Z"}\n));
is(field('L1', 'expires'), $end, 'jsonl, a later end: the end kept');

is(status($key{L1}), 'valid', 'L1 still valid in its grace');

# an earlier end: the grace shortened, and it stays short

($rc, $out) = import_ok('earlier', "key,id,subject,expires\n"
                        . "$key{L1},L1,s,1h\n");
is($out, summary(0, 1, 0, 0, 0), 'an earlier end: updated');
my $short = field('L1', 'expires');
ok($short lt $end, "an earlier end: shortened ($short < $end)");

($rc, $out) = import_ok('again', "hash,id,subject\n" . hash_of('L1')
                        . ",L1,s\n");
is(field('L1', 'expires'), $short, 'again, no expires: the short end kept');

# the new key is not retired: its end is the row's

($rc, $out) = import_ok('new-key', "key,id,subject,expires\n"
                        . "$key{L2},L2,s,2030-01-01T00:00:00Z\n");
is(field('L2', 'expires'), '2030-01-01T00:00:00Z', 'L2: an end set');

($rc, $out) = import_ok('new-key-lift', "key,id,subject\n$key{L2},L2,s\n");
is(field('L2', 'expires'), '-', 'L2: its end lifted, not retired');

# a grace of 0: the old key expired at once, and no import revives it

$key{G1} = $t->gen('--id', 'G1');
$t->ctl_ok('rotate', 'G1', '--new-id', 'G2', '--grace', '0');
my $gend = field('G1', 'expires');
is(status($key{G1}), 'expired', 'grace 0: G1 expired');

($rc, $out) = import_ok('revive', "key,id,expires,not_before\n"
                        . "$key{G1},G1,,\n");
is(status($key{G1}), 'expired', 'revive: G1 still expired');
is(field('G1', 'expires'), $gend, 'revive: the end kept');

($rc, $out) = import_ok('revive-dry', "key,id\n$key{G1},G1\n", '--dry-run');
is($out, summary(0, 0, 1, 0, 0, 1), 'revive, dry run: unchanged');
check_ok('plain');

# --replace with the export less its expires column: the ends kept,
# nothing to write

my $export = $t->ctl_ok('export');
my $cut = join '', map { join(',', (split /,/)[0 .. 4, 6 .. 9]) . "\n" }
                   split /\n/, $export;
like($cut, qr/\Ahash,id,subject,scopes,plan,not_before,disabled,hint,
               created\n/x, 'export less its expires column');

($rc, $out, $err) = import_ok('replace-cut', $cut, '--replace');
is($out, summary(0, 0, 5, 0, 0), '--replace, no expires: all unchanged');
is($err, '', '--replace: nothing on stderr');
is(field('L1', 'expires'), $short, '--replace: L1 keeps its short end');
is(field('G1', 'expires'), $gend, '--replace: G1 keeps its end');
is(status($key{G1}), 'expired', '--replace: G1 still expired');
is(status($key{L1}), 'valid', '--replace: L1 valid in its grace');
is(field('L1', 'replaced_by'), 'L2', '--replace: L1 still replaced by L2');
check_ok('replace');

# --replace that drops the new keys: the links go, the ends stay

($rc, $out) = import_ok('replace-drop', "key,id\n$key{L1},L1\n$key{G1},G1\n"
                        . "$key{K},K\n", '--replace', '--force');
is($out, summary(0, 2, 1, 2, 0), '--replace without L2 and G2: 2 removed');
is(field('L1', 'replaced_by'), '-', 'L2 gone: the link dropped');
is(field('L1', 'expires'), $short, 'L2 gone: L1 keeps its end');
is(status($key{G1}), 'expired', 'G2 gone: G1 still expired');
check_ok('replace drop');

# --replace keeps the creation time of a key that stays, and takes a
# "created" column's

$t->init_db({ db => "$prefix/c" });

my %ck = map { $_ => $t->ctl_ok({ db => "$prefix/c" }, 'gen', '--id', $_) }
         qw(c1 c2 c3);
chomp %ck;

write_file("$prefix/created.csv", "key,id,created\n"
           . "$ck{c1},c1,2020-01-01T00:00:00Z\n"
           . "$ck{c2},c2,2020-01-01T00:00:00Z\n"
           . "$ck{c3},c3,2020-01-01T00:00:00Z\n");

# a plain import keeps the stored time, whatever the column; so the keys
# are made again with --replace, which takes the column

($rc, $out) = $t->ctl({ db => "$prefix/c" }, 'import', '--replace',
                      "$prefix/created.csv");
is($rc, 0, 'created column: exit code');
is($out, summary(0, 3, 0, 0, 0), 'created column: 3 updated');

my $created = sub {
    my ($id) = @_;
    my ($v) = $t->ctl_ok({ db => "$prefix/c" }, 'show', $id)
              =~ /^created: (.*)$/m;
    return $v;
};

is($created->('c1'), '2020-01-01T00:00:00Z', 'created column: taken');

write_file("$prefix/no-created.csv", "key,id,subject\n$ck{c1},c1,x\n"
           . "$ck{c2},c2,\n" . 'new-key-' . ('n' x 24) . ",c4,\n");

($rc, $out, $err) = $t->ctl({ db => "$prefix/c" }, 'import', '--replace',
                            "$prefix/no-created.csv");
is($rc, 0, 'no created column: exit code') or diag($err);
is($out, summary(1, 1, 1, 1, 0), 'no created column: c2 unchanged, c1 '
   . 'updated, c4 added, c3 removed');
is($created->('c1'), '2020-01-01T00:00:00Z', 'c1 keeps its creation time');
is($created->('c2'), '2020-01-01T00:00:00Z', 'c2 keeps its creation time');
isnt($created->('c4'), '2020-01-01T00:00:00Z', 'c4, new: created now');

write_file("$prefix/other-created.csv", "key,id,created\n"
           . "$ck{c1},c1,2021-06-01T00:00:00Z\n$ck{c2},c2,\n");

($rc, $out) = $t->ctl({ db => "$prefix/c" }, 'import', '--replace',
                      '--dry-run', "$prefix/other-created.csv");
is($out, summary(0, 1, 1, 1, 0, 1), 'dry run: would update c1 only');

($rc, $out) = $t->ctl({ db => "$prefix/c" }, 'import', '--replace',
                      "$prefix/other-created.csv");
is($created->('c1'), '2021-06-01T00:00:00Z', 'a created value: taken');
is($created->('c2'), '2020-01-01T00:00:00Z', 'an empty created: kept');

# the summary of nothing

($rc, $out, $err) = import_ok('nothing', "key,id\n");
is($out, summary(0, 0, 0, 0, 0), 'header only: 0 keys');
is($err, '', 'header only: nothing on stderr');

done_testing();
