#!/usr/bin/perl

# SIGKILL during an import of 1,000,000 keys, at several moments of it
# (fractions of a measured whole run: reading and hashing, sorting, the
# write transaction, around the commit): the database is left exactly
# as before, or, killed after the commit, exactly as after the whole
# import; "apikeyctl check" is clean each time, and a following import
# succeeds.

use strict;
use warnings;

use Test::More;

use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Compress::Zlib ();

use Apikey::Harness qw(write_file);

my $t = Apikey::Harness->new()->require_apikeyctl();

my $prefix = $t->prefix();
my $ctl = $t->{apikeyctl};
my $db = $t->db();
my @db = ('-d', $db, '-s', $t->secret());

# under ASan (make test-asan) apikeyctl is a few times slower: fewer keys

my $n = $ENV{APIKEY_KILL_KEYS} || ($ENV{ASAN_OPTIONS} ? 200000 : 1000000);

$t->init_db();

my @b62 = ('0' .. '9', 'A' .. 'Z', 'a' .. 'z');

# 1,000 keys before, of their own ids

write_file("$prefix/before.csv", "key,id,created\n"
           . join('', map { keyline("before$_") } 1 .. 1000));

$t->ctl_ok('import', "$prefix/before.csv");

my $before = $t->ctl_ok('export');
like($before, qr/\A[^\n]*\n(?:[^\n]*\n){1000}\z/, 'export of 1000 keys');

# the big input: the keys are distinct windows of one random string of
# base62 characters, each with the checksum of the generated shape, so
# that a million take a second or two to make

my $pool = join '', map { $b62[rand 62] } 1 .. $n + 64;

{
    open(my $f, '>', "$prefix/big.csv") or die "big.csv: $!";
    print $f "key,id,created\n";

    my $buf = '';

    for my $i (1 .. $n) {
        $buf .= keyline("k$i", substr($pool, $i, 32));
        if (length $buf > 65536) { print $f $buf; $buf = '' }
    }

    print $f $buf;
    close $f or die "big.csv: $!";
}

# one whole run on a copy, timed: the moments are fractions of it

system('cp', '-a', $db, "$prefix/copy") == 0 or die "cp: $?";

my $start = time;
my ($rc, $out, $err) = $t->ctl({ db => "$prefix/copy" }, 'import',
                               "$prefix/big.csv");
my $whole = time - $start;

is($rc, 0, 'whole import exit code');
my $summary = "imported $n keys: $n added, 0 updated, 0 unchanged, "
              . "0 removed, 0 rejected";
is($out, "$summary\n", 'whole import summary');
note(sprintf 'whole import of %d keys: %.2f s', $n, $whole);

my $after = $t->ctl_ok({ db => "$prefix/copy" }, 'export');
$t->no_check("$prefix/copy");
system('rm', '-rf', "$prefix/copy");

my %states = (before => 0, after => 0);

for my $frac (0.05, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9, 0.96, 1.0) {
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDOUT, '>', "$prefix/kill.out" or die;
        open STDERR, '>', "$prefix/kill.err" or die;
        exec $ctl, @db, 'import', "$prefix/big.csv" or die "exec: $!";
    }

    my $at = $start = time;
    my $deadline = $start + $frac * $whole;
    my $done;

    while (time < $deadline) {
        $done = waitpid($pid, WNOHANG) == $pid;
        last if $done;
        sleep(0.005);
    }

    unless ($done) {
        kill 'KILL', $pid;
        waitpid($pid, 0);
    }

    my $how = ($? & 127) == 9 ? 'killed' : 'ended, exit ' . ($? >> 8);
    my $when = sprintf '%.0f%% (%.2f s)', 100 * $frac, time - $at;

    my ($crc, $cout) = $t->ctl('check');
    is($crc, 0, "check after $how at $when")
        or diag($cout);

    my $now = $t->ctl_ok('export');

    if ($now eq $before) {
        $states{before}++;
        pass("export as before after $how at $when");

    } elsif ($now eq $after) {
        $states{after}++;
        pass("export as after the whole import, $how at $when");

        # back to the state before, for the next moment

        $t->ctl_ok('import', '--replace', '--force', "$prefix/before.csv");
        is($t->ctl_ok('export'), $before, 'back to the state before');

    } else {
        fail("export neither before nor after, $how at $when");
    }
}

note("states: $states{before} before, $states{after} after");
ok($states{before} >= 5, 'most moments left the database as before');

# a following import succeeds

($rc, $out, $err) = $t->ctl('import', "$prefix/big.csv");
is($rc, 0, 'import after the kills exit code');
is($t->ctl_ok('export'), $after, 'import after the kills: as the whole one');

unlink "$prefix/big.csv";

done_testing();


# a line of key,id,created: a key of the generated shape and its checksum

sub keyline {
    my ($id, $random) = @_;

    $random //= join '', map { $b62[rand 62] } 1 .. 32;

    my $k = "ak_$random";
    my $crc = Compress::Zlib::crc32($k);
    my $sum = '';

    for (1 .. 6) {
        $sum = $b62[$crc % 62] . $sum;
        $crc = int($crc / 62);
    }

    return "$k$sum,$id,2026-01-01T00:00:00Z\n";
}
