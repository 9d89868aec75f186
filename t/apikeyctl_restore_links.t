#!/usr/bin/perl

# Tests for restore and the rotation links of its SRC: a SRC whose links
# check would flag (a link to a key that is not in SRC, a pair that does
# not link back, a key that replaces itself) is refused with exit 1, the
# key named, and nothing changed; a SRC whose links pair restores.  The
# broken sources are made through LMDB itself with mdb_load.

use strict;
use warnings;

use Test::More;

use Apikey::Harness;

my $t = Apikey::Harness->new()->require_apikeyctl();

plan(skip_all => 'no mdb_load (lmdb-utils)') unless -x '/usr/bin/mdb_load';

my $prefix = $t->prefix();
my ($rc, $out, $err);

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

# a key added the way the tools would add it: keys and ids

sub add {
    my ($db, $hash, %r) = @_;

    load($db, 'keys', $hash, record(%r));
    load($db, 'ids', $r{id}, $hash);
}

# the live database: its keys, and what must stay as it is

$t->init_db();
$t->gen('--id', $_) for qw(live1 live2);

my $before = $t->ctl_ok('export');

my $n = 0;

sub src {
    my $db = "$prefix/src-" . ++$n;

    $t->init_db({ db => $db });
    $t->ctl_ok({ db => $db }, 'gen', '--id', 'plain');
    $t->no_check($db);

    return $db;
}

sub refused {
    my ($name, $db, $re) = @_;

    my ($crc, $cout) = $t->ctl({ db => $db }, 'check');
    is($crc, 1, "$name: check flags SRC") or diag($cout);

    for my $dry (0, 1) {
        my $what = $dry ? "$name, dry run" : $name;

        ($rc, $out, $err) = $t->ctl('restore', '--force',
                                    $dry ? ('--dry-run') : (), $db);
        is($rc, 1, "$what: exit code");
        is($out, '', "$what: nothing on stdout");
        like($err, $re, "$what: the key named");
        like($err, qr/is damaged/, "$what: SRC is damaged");
        is($t->ctl_ok('export'), $before, "$what: nothing changed");
    }
}

my $h1 = "\x11" x 32;
my $h2 = "\x22" x 32;

# the red team's SRC: "o" is replaced by "n", and "n" is missing

{
    my $db = src();

    add($db, $h1, id => 'o', replaced_by => 'n', expires => time() + 3600);

    refused('a link to a missing key', $db,
            qr/key "o" is replaced by "n", which is not in it/);
}

# the other way: "n" replaces "o", which is missing

{
    my $db = src();

    add($db, $h1, id => 'n', replaces => 'o');

    refused('a back link to a missing key', $db,
            qr/key "n" replaces "o", which is not in it/);
}

# both keys there, but the pair does not link back

{
    my $db = src();

    add($db, $h1, id => 'o', replaced_by => 'n', expires => time() + 3600);
    add($db, $h2, id => 'n');

    refused('a pair that does not link back', $db,
            qr/key "o" is replaced by "n", which replaces no key/);
}

{
    my $db = src();

    add($db, $h1, id => 'o', replaced_by => 'n', expires => time() + 3600);
    add($db, $h2, id => 'n', replaces => 'x');

    refused('a pair linked elsewhere', $db,
            qr/key "o" is replaced by "n", which replaces "x"/);
}

# a key that replaces itself

{
    my $db = src();

    add($db, $h1, id => 'self', replaced_by => 'self',
        expires => time() + 3600);

    refused('a key replaced by itself', $db,
            qr/key "self" is replaced by itself/);
}

# check: a retired key (rotate) must end

{
    my $db = src();

    add($db, $h1, id => 'r', flags => 0x02);
    add($db, $h2, id => 'r2', flags => 0x02, expires => time() + 3600);

    my ($crc, $cout) = $t->ctl({ db => $db }, 'check');
    is($crc, 1, 'a retired key that never expires: check exit code');
    is(join("\n", $cout =~ /^problem: (.*)$/mg),
       'key "r" is retired but never expires',
       'a retired key that never expires: the problem');
}

# a SRC made by rotate restores, links and all

{
    my $db = "$prefix/good";

    $t->init_db({ db => $db });
    $t->ctl_ok({ db => $db }, 'gen', '--id', 'o');
    $t->ctl_ok({ db => $db }, 'rotate', 'o', '--new-id', 'n');
    $t->ctl_ok({ db => $db }, 'rotate', 'n', '--new-id', 'n2');

    ($rc, $out, $err) = $t->ctl('restore', '--force', $db);
    is($rc, 0, 'rotated SRC: exit code') or diag($err);
    is($err, '', 'rotated SRC: nothing on stderr');
    is($t->ctl_ok('export'), $t->ctl_ok({ db => $db }, 'export'),
       'rotated SRC: restored');
    like($t->ctl_ok('show', 'n'), qr/^replaces: o\nreplaced_by: n2$/m,
         'rotated SRC: links restored');
}

# backup reads its copy as restore does: a live database whose links
# pair backs up

($rc, $out, $err) = $t->ctl('backup', "$prefix/b1");
is($rc, 0, 'backup of linked keys: exit code') or diag($err);

done_testing();
