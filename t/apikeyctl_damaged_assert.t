#!/usr/bin/perl

# A damaged page that LMDB's own checks catch (a branch of the keys tree
# pointing into the ids tree: "Assertion 'IS_LEAF(mp)' failed"): LMDB
# aborts after its assert callback, and apikeyctl says the database is
# damaged and exits 1, never dies on SIGABRT.

use strict;
use warnings;

use Test::More;

use lib 't/lib';
use Apikey::Harness;

my $t = Apikey::Harness->new();
$t->require_apikeyctl();

$t->init_db();

my $csv = "key,id\n" . join '', map { sprintf "plainkey-%04d,pk%04d\n", $_, $_ }
                                     1 .. 3000;
$t->ctl_ok({ input => $csv }, 'import', '-');

my $copy = $t->prefix . '/copy';
$t->ctl_ok('backup', $copy);

# the root branch pages of both trees: keys has 32-byte keys, ids short

my $file = "$copy/data.mdb";
open my $fh, '+<:raw', $file or die "$file: $!";
my $size = -s $file;
my $ps = 4096;

my ($keys_branch, $ids_branch);

for my $pg (2 .. $size / $ps - 1) {
    my $p;
    seek $fh, $pg * $ps, 0;
    read $fh, $p, $ps;

    my ($flags, $lower) = unpack 'x10 v v', $p;
    next unless $flags & 0x01;                  # P_BRANCH

    my $n = ($lower - 16) / 2;
    next if $n < 3;

    my $off = unpack 'v', substr($p, 16 + 2, 2);
    my $ksize = unpack 'v', substr($p, $off + 6, 2);

    $keys_branch //= $pg if $ksize == 32;
    $ids_branch //= $pg if $ksize > 0 && $ksize < 32;
}

SKIP: {
    skip 'no branch page in both trees (LMDB layout changed?)', 6
        unless defined $keys_branch && defined $ids_branch;

    # the second child of the keys root now names the ids root

    my $p;
    seek $fh, $keys_branch * $ps, 0;
    read $fh, $p, $ps;
    my $off = unpack 'v', substr($p, 16 + 2, 2);
    substr($p, $off, 4) = pack 'vv', $ids_branch & 0xffff, $ids_branch >> 16;
    seek $fh, $keys_branch * $ps, 0;
    print $fh $p;
    close $fh;

    $t->no_check($copy);

    my ($rc, $out, $err) = $t->ctl({ db => $copy }, 'check');
    is($rc, 1, 'check of a page LMDB finds inconsistent exit 1, no abort');
    like($out, qr/^problem: data\.mdb is damaged: LMDB found a page inconsistent \(/m,
         'check says it as a problem');
    like($err, qr/data\.mdb is damaged: LMDB found a page inconsistent/,
         'and why');

    for my $cmd (['export'], ['list', '--format', 'csv'], ['stats']) {
        ($rc, $out, $err) = $t->ctl({ db => $copy }, @$cmd);
        ok($rc == 1 || $rc == 0, "@$cmd exits 1 or 0, no abort")
            or diag "exit $rc: $err";
    }

    # restore from it refuses, the live database unchanged

    my $before = $t->ctl_ok('export');
    ($rc, $out, $err) = $t->ctl('restore', '--force', $copy);
    ok($rc == 1, 'restore from it exit 1, no abort') or diag "exit $rc: $err";
    is($t->ctl_ok('export'), $before, 'the live database is unchanged');
}

done_testing();
