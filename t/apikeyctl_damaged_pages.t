#!/usr/bin/perl

# Tests apikeyctl on a data.mdb with a few damaged bytes inside a B-tree
# page, which make LMDB itself read astray and fault: check, stats,
# export, list and verify each exit 1 with a message that says the file
# is damaged, never die on a signal, never dump core, never print a key.

use strict;
use warnings;

use Test::More;

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();
my $good = "$prefix/good";
my $bad = "$prefix/bad";

my $damage = qr/data\.mdb is damaged: a read inside it faulted/;

# a fixed secret and fixed input: the layout of the pages is the same on
# every run, and the damage found at once

write_file($t->secret(), ('a' x 64) . "\n");
chmod 0600, $t->secret();

my @keys = map { sprintf('fixedkey%04d', $_) } 0 .. 39;
my $csv = "key,id,subject,created\n"
          . join('', map { sprintf("fixedkey%04d,id%02d,sub,"
                                   . "2026-01-01T00:00:00Z\n", $_, $_) }
                     0 .. 39);

$t->ctl_ok('init');
$t->ctl_ok({ input => $csv }, 'import', '-');
$t->ctl_ok('backup', $good);

my $size = -s "$good/data.mdb";
my $page = 4096;

# four 0xff bytes written over the pages after the two meta pages of a
# copy, until export faults: where the red team found it first, then
# every fourth byte, at most 400 tries

sub damage {
    my ($off) = @_;

    open my $in, '<:raw', "$good/data.mdb" or die "$good/data.mdb: $!";
    my $data = do { local $/; <$in> };
    close $in;

    substr($data, $off, 4) = "\xff" x 4;

    mkdir $bad;
    unlink "$bad/lock.mdb";

    open my $out, '>:raw', "$bad/data.mdb" or die "$bad/data.mdb: $!";
    print $out $data;
    close $out;
}

# exit 1 with the message, or a signal (apikeyctl before the fix): both
# are the damage looked for

sub faults {
    my ($rc, $out, $err) = $t->ctl({ db => $bad }, @_);
    return ($rc == 1 && $err =~ $damage) || $rc > 128;
}

my @offsets = (12876);

for (my $off = 2 * $page; $off + 4 <= $size; $off += 4) {
    push @offsets, $off if $off != 12876;
}

splice(@offsets, 400) if @offsets > 400;

my $found;

for my $off (@offsets) {
    damage($off);

    if (faults('export')) {
        $found = $off;
        last;
    }
}

plan(skip_all => "no 4-byte damage in the first " . scalar(@offsets)
                 . " offsets of the pages made LMDB fault")
    unless defined $found;

note("damaged at offset $found");

# each command on the damaged copy: exit 1, the message, no key

my @runs = (
    [ 'check' ],
    [ 'stats' ],
    [ 'stats', '--format', 'json' ],
    [ 'export' ],
    [ 'export', '--format', 'jsonl' ],
    [ 'list' ],
    [ 'list', '--format', 'json' ],
);

my $keys_re = join('|', @keys);

my $says = quotemeta("apikeyctl: $bad: data.mdb is damaged: a read inside "
                     . "it faulted (SIGSEGV in LMDB), or apikeyctl has a bug "
                     . "(please report it); restore a backup into a new "
                     . "directory (init, then restore) and swap it in\n");

for my $run (@runs) {
    my ($rc, $out, $err) = $t->ctl({ db => $bad }, @$run);

    is($rc, 1, "@$run: exit 1, no signal");
    like($err, qr/^$says\z/m,
         "@$run: says the data file is damaged, and what to do");
    unlike($out . $err, qr/$keys_re/, "@$run: no key printed");
    ok(!-e "$bad/core" && !-e "$prefix/core", "@$run: no core file");
}

# check says it as a problem too

my ($rc, $out, $err) = $t->ctl({ db => $bad }, 'check');
like($out, qr/^problem: data\.mdb is damaged/m, 'check: a problem line');

# verify of every key: each is found, not found, or the damage message;
# never a signal, and never a key on either stream

my ($faulted, $answered) = (0, 0);

for my $key (@keys) {
    ($rc, $out, $err) = $t->ctl({ db => $bad, input => "$key\n" },
                                'verify', '-');

    if ($rc == 1 && $err =~ $damage) {
        $faulted++;
    } elsif ($rc <= 3) {
        $answered++;
    }

    ok($rc <= 3, "verify $key: no signal ($rc)") or diag($err);
    unlike($out . $err, qr/$keys_re/, "verify: no key printed");
}

note("verify: $faulted faulted, $answered answered");

# and a key on the command line: the message names no key either

($rc, $out, $err) = $t->ctl({ db => $bad }, 'verify', $keys[26]);
ok($rc <= 3, 'verify KEY: no signal');
unlike($out . $err, qr/$keys_re/, 'verify KEY: no key printed');

# restore reads two databases: from the damaged copy into a whole one,
# or from a whole backup over the damaged copy, it fails naming both,
# and leaves the whole one as it was

my $whole = "$prefix/whole";

$t->ctl_ok({ db => $whole }, 'init');

for my $case ([ 'from the damaged copy', $whole, $bad ],
              [ 'over the damaged copy', $bad, $good ])
{
    my ($name, $db, $src) = @$case;

    ($rc, $out, $err) = $t->ctl({ db => $db }, 'restore', '--force', $src);

    my $restore = quotemeta("apikeyctl: restore: a read inside LMDB "
                            . "faulted (SIGSEGV): the data.mdb of the "
                            . "backup or of \"$db\" is damaged "
                            . "(\"apikeyctl check\" on each tells which), "
                            . "or apikeyctl has a bug (please report it); "
                            . "restore into a new directory and swap it "
                            . "in\n");

    is($rc, 1, "restore $name: exit 1, no signal");
    like($err, qr/^$restore\z/, "restore $name: the message");
    unlike($out . $err, qr/$keys_re/, "restore $name: no key printed");
}

($rc, $out, $err) = $t->ctl({ db => $whole }, 'export');
is($rc, 0, 'restore from the damaged copy: the database still opens');
unlike($out, qr/id\d\d/, 'restore from the damaged copy: nothing restored');

# the way out: the backup restored into a new directory, to swap in

my $new = "$prefix/new";

$t->ctl_ok({ db => $new }, 'init');
$t->ctl_ok({ db => $new }, 'restore', $good);

($rc, $out, $err) = $t->ctl({ db => $new, input => "$keys[26]\n" },
                            'verify', '-');
is($rc, 0, 'restored into a new directory: the key verifies');

# the backup it was copied from is whole: the key verifies there

($rc, $out, $err) = $t->ctl({ db => $good, input => "$keys[26]\n" },
                            'verify', '-');
is($rc, 0, 'the good copy verifies the key');

$t->no_check($bad);

done_testing();
