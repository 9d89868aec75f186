#!/usr/bin/perl

# Tests for import's summary (one line on standard output, after the
# commit: the keys imported, added, updated, unchanged, removed, rejected;
# "would" with --dry-run; nothing on standard error but the rows
# rejected, with their line numbers), rotation links kept on an update,
# and a full map grown within the command (init --map-size 1M, then
# 100,000 keys).

use strict;
use warnings;

use Test::More;

use Compress::Zlib ();

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();

$t->init_db();

my ($rc, $out, $err);

my @b62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

# a key of the generated shape, with its checksum

sub key {
    my $k = 'ak_' . join '', map { $b62[rand 62] } 1 .. 32;
    my $crc = Compress::Zlib::crc32($k);
    my $sum = '';

    for (1 .. 6) {
        $sum = $b62[$crc % 62] . $sum;
        $crc = int($crc / 62);
    }

    return "$k$sum";
}

sub summary {
    my ($a, $u, $s, $r, $j, $dry) = @_;
    my $n = $a + $u + $s;

    return ($dry ? 'dry run: would import' : 'imported')
           . " $n key" . ($n == 1 ? '' : 's') . ": "
           . "$a added, $u updated, $s unchanged, $r removed, $j rejected"
           . ($dry ? '; nothing was changed' : '') . "\n";
}

sub import_ok {
    my ($name, $csv, @flags) = @_;

    write_file("$prefix/$name.csv", $csv);

    my @r = $t->ctl('import', @flags, "$prefix/$name.csv");
    is($r[0], 0, "$name exit code") or diag($r[2]);

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

my @k = map { key() } 1 .. 6;

# added

($rc, $out, $err) = import_ok('add', "key,id,subject\n$k[0],a,s\n$k[1],b,s\n"
                              . "$k[2],c,s\n");
is($out, summary(3, 0, 0, 0, 0), 'add summary');
is($err, '', 'add: nothing on stderr');
check_ok('add');

# the same rows again: unchanged, nothing written (the generation stays)

my $before = $t->ctl_ok('export');
my ($gen) = $t->ctl_ok('stats') =~ /^generation:\s+(\d+)$/m;

($rc, $out, $err) = import_ok('same', "key,id,subject\n$k[0],a,s\n"
                              . "$k[1],b,s\n$k[2],c,s\n");
is($out, summary(0, 0, 3, 0, 0), 'unchanged summary');
is($err, '', 'unchanged: nothing on stderr');
is($t->ctl_ok('export'), $before, 'unchanged: export the same');
like($t->ctl_ok('stats'), qr/^generation:\s+$gen$/m,
     'unchanged: nothing written, the generation stays');

# one changed, one unchanged, one added, one rejected (a bad row)

($rc, $out, $err) = import_ok('mixed', "key,id,subject\n$k[0],a,other\n"
                              . "$k[1],b,s\n$k[3],d,s\nnot a key,e,s\n",
                              '--skip-invalid');
like($err, qr/\Aapikeyctl: import: skipped line 5: key is malformed [^\n]*\n\z/,
     'mixed: the bad row and its line, alone');
is($out, summary(1, 1, 1, 0, 1), 'mixed summary');
like($t->ctl_ok('show', 'a'), qr/^subject: other$/m, 'updated subject');
check_ok('mixed');

# rejected in the transaction: the same key twice, an id of another key,
# a key stored under another id; each with its line, in file order

($rc, $out, $err) = import_ok('clash', "key,id\n$k[4],f\n$k[4],g\n"
                              . "$k[5],a\n$k[0],zz\n", '--skip-invalid');
is($err, "apikeyctl: import: skipped line 3: the same key as line 2\n"
   . "apikeyctl: import: skipped line 4: id \"a\" already exists with "
   . "another key\n"
   . "apikeyctl: import: skipped line 5: key already exists as id \"a\"\n",
   'clash messages');
is($out, summary(1, 0, 0, 0, 3), 'clash summary');
check_ok('clash');

# without --skip-invalid the first of them fails the import, nothing
# changes, and there is no summary

$before = $t->ctl_ok('export');

write_file("$prefix/clash2.csv", "key,id\n$k[5],a\n$k[5],h\n");
($rc, $out, $err) = $t->ctl('import', "$prefix/clash2.csv");
is($rc, 3, 'clash without --skip-invalid exit code');
is($err, "apikeyctl: import: line 2: id \"a\" already exists with another "
   . "key\n", 'clash without --skip-invalid: the first row only');
is($out, '', 'clash without --skip-invalid: no result');
is($t->ctl_ok('export'), $before, 'clash without --skip-invalid: unchanged');

# --dry-run: "would", and nothing changes

($rc, $out, $err) = import_ok('dry', "key,id,subject\n$k[0],a,s\n"
                              . "$k[5],i,s\n", '--dry-run');
is($out, summary(1, 1, 0, 0, 0, 1), 'dry run summary');
is($err, '', 'dry run: nothing on stderr');
is($t->ctl_ok('export'), $before, 'dry run: unchanged');

# --replace: removed counted; --dry-run with it

my $all = "key,id,subject\n$k[0],a,other\n$k[1],b,s\n$k[2],c,s\n"
          . "$k[3],d,s\n";

($rc, $out, $err) = import_ok('replace-dry', $all, '--replace', '--dry-run');
is($out, summary(0, 0, 4, 1, 0, 1), 'replace dry run summary');
is($t->ctl_ok('export'), $before, 'replace dry run: unchanged');

($rc, $out, $err) = import_ok('replace', $all, '--replace');
is($out, summary(0, 0, 4, 1, 0), 'replace summary: f removed');
is($err, '', 'replace: nothing on stderr');
($rc) = $t->ctl('show', 'f');
is($rc, 3, 'replace: f removed');
check_ok('replace');

# rotation links: kept by an update, and by --replace while both keys stay

my $new = $t->ctl_ok('rotate', 'a', '--new-id', 'a2', '--grace', '1h');
chomp $new;

($rc, $out, $err) = import_ok('links', "key,id,subject\n$k[0],a,changed\n");
is($out, summary(0, 1, 0, 0, 0), 'links update summary: 1 key');

my $show = $t->ctl_ok('show', 'a');
like($show, qr/^replaced_by: a2$/m, 'update keeps replaced_by');
like($show, qr/^subject: changed$/m, 'update changes the subject');
like($t->ctl_ok('show', 'a2'), qr/^replaces: a$/m,
     'the new key keeps replaces');
check_ok('links');

my $export = $t->ctl_ok('export');
write_file("$prefix/export.csv", $export);

($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/export.csv");
is($rc, 0, 'export then --replace exit code');
is($out, summary(0, 0, 5, 0, 0), 'export then --replace: all unchanged');
like($t->ctl_ok('show', 'a'), qr/^replaced_by: a2$/m,
     '--replace keeps replaced_by');
like($t->ctl_ok('show', 'a2'), qr/^replaces: a$/m, '--replace keeps replaces');

# a key that goes takes its links with it

write_file("$prefix/no-a.csv", join "\n", grep { !/"a",/ } split /\n/, $export);
($rc, $out, $err) = $t->ctl('import', '--replace', "$prefix/no-a.csv");
is($rc, 0, '--replace without a exit code');
is($out, summary(0, 1, 3, 1, 0), q{--replace without a: a2 updated (its }
   . 'link), a removed');
like($t->ctl_ok('show', 'a2'), qr/^replaces: -$/m, 'the link to a is gone');
check_ok('links gone');

# JSONL: the same summary

write_file("$prefix/rows.jsonl", qq{{"key": "$k[5]", "id": "j"}\n}
           . qq{{"key": "bad"}\n});
($rc, $out, $err) = $t->ctl('import', '--skip-invalid', "$prefix/rows.jsonl");
is($rc, 0, 'jsonl exit code');
is($err, "apikeyctl: import: skipped line 2: key is malformed (8 to 256 "
   . "printable ASCII characters, no spaces)\n", 'jsonl message')
    or diag($err);
is($out, summary(1, 0, 0, 0, 1), 'jsonl summary: 1 key');

# a full map is grown within the command: 1M map, 100,000 keys

my $db2 = "$prefix/small";
$t->init_db({ db => $db2 }, '--map-size', '1M');

my ($map_before) = $t->ctl_ok({ db => $db2 }, 'stats') =~ /^map_size:\s+(\d+)/m;

open(my $f, '>', "$prefix/100k.csv") or die;
print $f "key\n";
my $pool = join '', map { $b62[rand 62] } 1 .. 100100;
for my $i (1 .. 100000) {
    my $k = 'ak_' . substr($pool, $i, 32);
    my $crc = Compress::Zlib::crc32($k);
    my $sum = '';
    for (1 .. 6) { $sum = $b62[$crc % 62] . $sum; $crc = int($crc / 62) }
    print $f "$k$sum\n";
}
close $f;

($rc, $out, $err) = $t->ctl({ db => $db2 }, 'import', "$prefix/100k.csv");
is($rc, 0, 'map grown: exit code') or diag($err);
is($out, summary(100000, 0, 0, 0, 0), 'map grown: summary');

my ($map_after) = $t->ctl_ok({ db => $db2 }, 'stats') =~ /^map_size:\s+(\d+)/m;
ok($map_after > $map_before, "map grown: $map_before to $map_after");
like($t->ctl_ok({ db => $db2 }, 'stats'), qr/^keys:\s+100000$/m,
     'map grown: 100000 keys');

($rc, $out) = $t->ctl({ db => $db2 }, 'check');
is($rc, 0, 'map grown: check') or diag($out);

unlink "$prefix/100k.csv";

done_testing();
