#!/usr/bin/perl

# Tests apikeyctl follow as a daemon: SIGTERM during a long --poll (1h)
# and during the backoff after PostgreSQL went away ends it with 0 at
# once, not when the wait would have ended (ppoll() with SIGTERM blocked
# outside it: a signal between the check of the stop flag and the wait
# is not lost).

use strict;
use warnings;

use Test::More;

use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness;
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable();
plan skip_all => $why if $why;

$t->init_db();

my $pg = Apikey::Pg->new();
$pg->psql($t->ctl_ok('follow', '--print-schema'));

my $log_file = $t->prefix() . '/logs/follow.log';

sub follow_log { Apikey::Harness::slurp($log_file) // '' }

# polls for a line of the follower's log, from the offset given

sub wait_log {
    my ($re, $from) = @_;
    my $end = time() + Apikey::Harness::scaled(20);

    while (time() < $end) {
        return 1 if substr(follow_log(), $from // 0) =~ $re;
        sleep 0.1;
    }

    return 0;
}

# the exit status of a follower sent SIGTERM, undef if it did not end
# within 20 s (a generous bound, not a measure)

sub term {
    my ($pid) = @_;

    kill 'TERM', $pid;

    my $end = time() + Apikey::Harness::scaled(20);

    while (time() < $end) {
        return $? >> 8 if waitpid($pid, WNOHANG) == $pid;
        sleep 0.1;
    }

    kill 'KILL', $pid;
    waitpid($pid, 0);

    return undef;
}

# SIGTERM during a wait of --poll 1h

my $from = length follow_log();
my $pid = $pg->follower($t, '--poll', '1h');

ok(wait_log(qr/following PostgreSQL at version/, $from),
   '--poll 1h: synchronised') or diag(follow_log());
sleep 0.5;

is(term($pid), 0, '--poll 1h: SIGTERM ends the wait, exit 0');

# SIGTERM during the backoff: PostgreSQL stopped

$from = length follow_log();
$pid = $pg->follower($t, '--poll', '1h');

ok(wait_log(qr/following PostgreSQL at version/, $from),
   'backoff: synchronised');

$pg->stop('fast');

# the wait of --poll 1h ends when the connection is lost; the backoff's
# is 30 s

ok(wait_log(qr/PostgreSQL unreachable/, $from), 'backoff: noticed')
    or diag(follow_log());
sleep 0.5;

is(term($pid), 0, 'backoff: SIGTERM ends the wait, exit 0');

$pg->start();

done_testing();
