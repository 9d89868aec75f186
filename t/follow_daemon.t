#!/usr/bin/perl

# Tests apikeyctl follow as a daemon.  Idle, it leaves the database
# alone: no commit a poll (generation, changed and the mtime of data.mdb
# stay as they are; follow_synced is written with changes, and every
# 30 s otherwise), and a change is still committed at once.  Without a
# CONNINFO argument, follow reads APIKEY_FOLLOW_CONNINFO (as the systemd
# unit passes it): it works, and /proc/PID/cmdline, which every user
# reads, holds none of it; one libpq cannot parse is a usage error that
# names the variable, not its value; unset, libpq's PG* variables
# apply.  SIGTERM
# during a long --poll (1h)
# and during the backoff after PostgreSQL went away ends it with 0 at
# once, not when the wait would have ended (ppoll() with SIGTERM blocked
# outside it: a signal between the check of the stop flag and the wait
# is not lost).  Out of memory (an address space limit, prlimit) while
# it reads the table: exit 1 at once, for systemd to start it again,
# not "PostgreSQL unreachable" and a retry for ever.  lock.mdb deleted
# by hand under it: exit 1 too, and the follower started again makes it
# anew, with the group and mode of init.

use strict;
use warnings;

use Test::More;

use JSON::PP qw(decode_json);
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

sub stats { decode_json($t->ctl_ok('stats', '--format', 'json')) }

sub mtime { (Time::HiRes::stat($t->db() . '/data.mdb'))[9] }

sub valid { ($t->ctl('verify', $_[0]))[0] == 0 ? 1 : 0 }

# idle: no commit; a change: committed at once

my $key = $t->gen('--id', 'tmp');
$t->ctl_ok('revoke', 'tmp');

my $hash = $t->ctl_ok({ input => $key }, 'hash');
chomp $hash;

my $from = length follow_log();
my $pid = $pg->follower($t, '--poll', '100ms');

ok(wait_log(qr/following PostgreSQL at version/, $from),
   'idle: synchronised') or diag(follow_log());

# the first round of a run writes follow_synced: after it, none

sleep 0.5;

my $st = stats();
my $mtime = mtime();

sleep 3;

my $st2 = stats();

is($st2->{generation}, $st->{generation}, 'idle: generation unchanged');
is($st2->{changed}, $st->{changed}, 'idle: changed unchanged');
is($st2->{follow_synced}, $st->{follow_synced},
   'idle: follow_synced unchanged');
is(mtime(), $mtime, 'idle: data.mdb not written');

$pg->psql("INSERT INTO apikey_keys (hash, id) "
          . "VALUES (decode('$hash', 'hex'), 'a')");

my $end = time() + Apikey::Harness::scaled(20);
sleep 0.1 while !valid($key) && time() < $end;

ok(valid($key), 'a change: served');
cmp_ok(stats()->{generation}, '>', $st->{generation},
       'a change: committed');

is(term($pid), 0, 'idle: SIGTERM, exit 0');

# the CONNINFO in the environment, a password in it (unused: the
# server trusts its socket)

my $secret_part = 'hunter2pw';
my $conninfo = $pg->conninfo() . " password=$secret_part";

$from = length follow_log();
$pid = $pg->follower({ env => $conninfo }, $t, '--poll', '100ms');

ok(wait_log(qr/following PostgreSQL at version/, $from),
   'environment: synchronised') or diag(follow_log());

my $cmdline = Apikey::Harness::slurp("/proc/$pid/cmdline") // '';
$cmdline =~ s/\0/ /g;

like($cmdline, qr/ follow --poll 100ms $/, 'environment: the command line')
    or diag($cmdline);
unlike($cmdline, qr/\Q$secret_part\E|host=|dbname=/,
       'environment: no conninfo in /proc/PID/cmdline');

$pg->psql("UPDATE apikey_keys SET disabled = true WHERE id = 'a'");

$end = time() + Apikey::Harness::scaled(20);
sleep 0.1 while valid($key) && time() < $end;

ok(!valid($key), 'environment: a change followed');

is(term($pid), 0, 'environment: SIGTERM, exit 0');

# apikeyctl follow --once with an environment of its own

sub once_env {
    my (%env) = @_;

    local %ENV = %ENV;
    delete @ENV{grep { /^PG/ || $_ eq 'APIKEY_FOLLOW_CONNINFO' } keys %ENV};
    @ENV{keys %env} = values %env;

    my $err_file = $t->prefix() . '/once.err';
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $err_file or die;
        exec 'timeout', '-s', 'KILL', Apikey::Harness::scaled(20),
             $t->{apikeyctl}, '-d', $t->db(), '-s', $t->secret(), 'follow',
             '--once'
            or die "exec: $!";
    }

    waitpid($pid, 0);

    return ($? >> 8, Apikey::Harness::slurp($err_file) // '');
}

my ($rc, $err) = once_env(APIKEY_FOLLOW_CONNINFO =>
                          "host=h password='$secret_part");
is($rc, 2, 'environment: a conninfo libpq cannot parse, exit 2');
like($err, qr/^apikeyctl: follow: APIKEY_FOLLOW_CONNINFO is not a valid libpq connection string or URI \(not shown: it may hold a password\)$/m,
     'environment: the variable named');
unlike($err, qr/\Q$secret_part\E/, 'environment: its value not shown');

my ($host, $port) = $pg->conninfo() =~ /host=(\S+) port=(\d+)/;

($rc, $err) = once_env(PGHOST => $host, PGPORT => $port,
                       PGUSER => 'postgres', PGDATABASE => 'postgres');
is($rc, 0, 'no conninfo at all: libpq\'s PG* variables') or diag($err);

($rc, $err) = once_env(APIKEY_FOLLOW_CONNINFO => '', PGHOST => $host,
                       PGPORT => $port, PGUSER => 'postgres',
                       PGDATABASE => 'postgres');
is($rc, 0, 'an empty APIKEY_FOLLOW_CONNINFO: libpq\'s PG* variables')
    or diag($err);

($rc, $err) = once_env(APIKEY_FOLLOW_CONNINFO => $pg->conninfo(),
                       PGHOST => '/nonexistent');
is($rc, 0, 'APIKEY_FOLLOW_CONNINFO before the PG* variables')
    or diag($err);

is(($t->ctl('follow', '--once', 'a', 'b'))[0], 2,
   'two CONNINFO: a usage error');

# SIGTERM during a wait of --poll 1h

$from = length follow_log();
$pid = $pg->follower($t, '--poll', '1h');

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

# lock.mdb deleted by hand under a running follower: it exits 1 before
# its next round, and the follower started again (as systemd does)
# makes it anew, of the group and mode init gave it

my $lock = $t->db() . '/lock.mdb';
my @data = stat($t->db() . '/data.mdb');

$from = length follow_log();
$pid = $pg->follower($t, '--poll', '100ms');

ok(wait_log(qr/following PostgreSQL at version/, $from),
   'lock.mdb deleted: synchronised');

unlink $lock or die "unlink $lock: $!";

$end = time() + Apikey::Harness::scaled(20);
my $exit;

while (time() < $end) {
    if (waitpid($pid, WNOHANG) == $pid) {
        $exit = $? >> 8;
        last;
    }

    sleep 0.1;
}

is($exit, 1, 'lock.mdb deleted: exit 1, for systemd to start it again')
    or term($pid);
like(substr(follow_log(), $from), qr/^apikeyctl: follow: "\Q$lock\E" is no longer the lock file of the database followed \(deleted or replaced\): exiting, to be started again, which makes it anew$/m,
     'lock.mdb deleted: the reason') or diag(follow_log());

$from = length follow_log();
$pid = $pg->follower($t, '--poll', '100ms');

ok(wait_log(qr/following PostgreSQL at version/, $from),
   'lock.mdb deleted: the follower started again follows')
    or diag(follow_log());

my @lst = stat($lock);

ok(@lst, 'lock.mdb deleted: made anew');
is(sprintf('%04o', $lst[2] & 07777), $data[2] & 040 ? '0660' : '0600',
   'lock.mdb deleted: the mode init gives it');
is($lst[5], $data[5], 'lock.mdb deleted: the group of data.mdb');

is(term($pid), 0, 'lock.mdb deleted: SIGTERM, exit 0');

# out of memory in a full synchronisation: its address space limited to
# what an idle follower takes and 16 MB, for a table of 300,000 rows
# (their records take more)

SKIP: {
    skip 'prlimit (util-linux) not installed', 4
        unless -x '/usr/bin/prlimit';

    $from = length follow_log();
    $pid = $pg->follower($t, '--poll', '1h');

    ok(wait_log(qr/following PostgreSQL at version/, $from),
       'out of memory: an idle follower');

    my ($vm) = (Apikey::Harness::slurp("/proc/$pid/status") // '')
               =~ /^VmSize:\s+(\d+) kB/m;

    is(term($pid), 0, 'out of memory: the idle follower stopped');

    $pg->psql("INSERT INTO apikey_keys (hash, id) "
              . "SELECT decode(md5(i::text) || md5(i::text || 'x'), 'hex'), "
              . "'n' || i FROM generate_series(1, 300000) i");

    # a database of its own: a first synchronisation

    my $t2 = Apikey::Harness->new()->require_apikeyctl();
    $t2->init_db();

    my $err_file = $t2->prefix() . '/oom.err';
    my $child = fork() // die "fork: $!";

    if ($child == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', '/dev/null';
        open STDERR, '>', $err_file or die;
        exec '/usr/bin/prlimit', '--as=' . ($vm + 16 * 1024) * 1024,
             'timeout', '-s', 'KILL', Apikey::Harness::scaled(20),
             $t2->{apikeyctl}, '-d', $t2->db(), '-s', $t2->secret(),
             'follow', '--poll', '1h', $pg->conninfo()
            or die "exec: $!";
    }

    waitpid($child, 0);

    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my $err = Apikey::Harness::slurp($err_file) // '';

    is($rc, 1, 'out of memory: exit 1, at once (not retried)')
        or diag($err);
    unlike($err, qr/unreachable|trying again|connection lost/,
           'out of memory: not taken for PostgreSQL\'s failure');
}

done_testing();
