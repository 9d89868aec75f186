#!/usr/bin/perl

# Tests apikeyctl follow killed with SIGKILL at random moments against a
# real PostgreSQL: during its first synchronisation of 40000 rows (the
# database holds all of them or none), while it applies 40000 inserts
# and then 40000 updates in batches (after each kill, the database is
# the table as it was at the version in meta: never a state PostgreSQL
# did not have), and it resumes from that version without loss; the
# database is clean (check) and equal to the table at the end.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable() // Apikey::Pg::matrix_skip();
plan skip_all => $why if $why;

$t->init_db();

my $pg = Apikey::Pg->new();
$pg->psql($t->ctl_ok('follow', '--print-schema'));

my $n = 40000;

sub rows {
    my ($from, $to) = @_;
    $pg->psql("INSERT INTO apikey_keys (hash, id) SELECT "
              . "sha256(('row' || i)::bytea), 'r' || i "
              . "FROM generate_series($from, $to) i");
}

sub state {
    my $st = decode_json($t->ctl_ok('stats', '--format', 'json'));
    return ($st->{follow_version}, $st->{keys}, $st->{disabled});
}

# killed between 0 and $max seconds after it starts

sub kill_follower {
    my ($max) = @_;

    my $pid = $pg->follower($t, '--poll', '100ms');
    sleep(0.05 + rand($max));
    kill 'KILL', $pid;
    waitpid($pid, 0);
}

# the first synchronisation: all or nothing

rows(1, $n);

my ($ok, $seen_none, $seen_all) = (1, 0, 0);

for (1 .. 4) {
    kill_follower(0.6);

    my ($v, $keys) = state();

    if (!defined $v) {
        $ok &&= $keys == 0;
        $seen_none++;
    } else {
        $ok &&= $keys == $n;
        $seen_all++;
        last;
    }
}

ok($ok, 'killed in the first sync: all rows or none');
diag("first sync: killed $seen_none times before it, "
     . "$seen_all after");

my $r = $pg->follower($t, '--once');
waitpid($r, 0);
is($?, 0, 'first sync done');

# batches of inserts: after each kill, the keys are the rows of the
# table up to the version in meta

rows($n + 1, 2 * $n);

my ($bad, $kills, $partial) = (0, 0, 0);

for (1 .. 20) {
    kill_follower(0.3);
    $kills++;

    my ($v, $keys) = state();
    my $want = $pg->psql("SELECT count(*) FROM apikey_keys "
                         . "WHERE version <= $v");

    if ($keys != $want) {
        $bad++;
        diag("at version $v: $keys keys, the table had $want");
    }

    $partial++ if $keys > $n && $keys < 2 * $n;
    last if $keys == 2 * $n;
}

is($bad, 0, "inserts: killed $kills times, each time the table as it was");
diag("inserts: $partial kills left some batches applied, some not");

# however few batches the kills let through, the rest now

$r = $pg->follower($t, '--once');
waitpid($r, 0);
is($?, 0, 'inserts: resumed to the end');
is((state())[1], 2 * $n, 'inserts: every row a key');

# batches of updates, the same

$pg->psql("UPDATE apikey_keys SET disabled = true");

($bad, $kills) = (0, 0);

for (1 .. 20) {
    kill_follower(0.3);
    $kills++;

    my ($v, $keys, $disabled) = state();
    my $want = $pg->psql("SELECT count(*) FROM apikey_keys "
                         . "WHERE version <= $v");

    if ($keys != 2 * $n || $disabled != $want) {
        $bad++;
        diag("at version $v: $keys keys, $disabled disabled, "
             . "the table had $want");
    }

    last if $disabled == 2 * $n;
}

is($bad, 0, "updates: killed $kills times, each time the table as it was");

# resumed: nothing lost

$r = $pg->follower($t, '--once');
waitpid($r, 0);
is($?, 0, 'resumed to the end');

my ($v, $keys, $disabled) = state();
is($keys, 2 * $n, 'every row a key');
is($disabled, 2 * $n, 'every update applied');
is($v, $pg->psql("SELECT max(version) FROM apikey_keys"),
   'the last version reached');

my $log = Apikey::Harness::slurp($t->prefix() . '/logs/follow.log');
my @full = $log =~ /full synchronisation/g;
is(scalar @full, 1, 'one full synchronisation in all');

done_testing();
