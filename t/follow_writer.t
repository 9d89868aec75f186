#!/usr/bin/perl

# Tests apikeyctl follow against another writer of its database: a
# second follower is refused (flock() on data.mdb), exit 1, which the
# unit starts again; an import, a
# restore of an older backup, a gen by hand.  The follower notices, before its
# next round or at start-up, that the generation in meta is not the one
# its last commit made (meta "follow_generation"), says so once and
# synchronises in full: the keys are PostgreSQL's again, never a state
# PostgreSQL never had.  A follower started again after another one
# followed another PostgreSQL database synchronises in full too (meta
# "follow_source": the system identifier and the database's name, which
# a replica shares).  apikeyctl check accepts the meta entries.

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep time);

use Apikey::Harness;
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable();
plan skip_all => $why if $why;

$t->init_db();

my $pg = Apikey::Pg->new();
my $schema = $t->ctl_ok('follow', '--print-schema');

$pg->psql('CREATE DATABASE other');
$pg->psql($schema);
$pg->psql($schema, db => 'other');

my $n = 0;

sub key {
    my $id = 'tmp-' . $n++;
    my $key = $t->gen('--id', $id);
    $t->ctl_ok('revoke', $id);
    return $key;
}

sub hash {
    my $h = $t->ctl_ok({ input => $_[0] }, 'hash');
    chomp $h;
    return $h;
}

sub insert {
    my ($db, $id, $key) = @_;
    my $h = hash($key);
    $pg->psql("INSERT INTO apikey_keys (hash, id) "
              . "VALUES (decode('$h', 'hex'), '$id')", db => $db);
}

sub valid { ($t->ctl('verify', $_[0]))[0] == 0 ? 1 : 0 }

# polls until the key is (1) or is not (0) valid; what it is at the end

sub wait_valid {
    my ($key, $want) = @_;
    my $end = time() + Apikey::Harness::scaled(20);

    while (time() < $end) {
        return $want if valid($key) == $want;
        sleep 0.1;
    }

    return valid($key);
}

sub follow_log { Apikey::Harness::slurp($t->prefix() . '/logs/follow.log') }

my %k = map { $_ => key() } qw(a b c d e);

insert('postgres', 'a', $k{a});
insert('other', 'b', $k{b});
insert('other', 'c', $k{c});
insert('postgres', 'c2', $k{c});   # c: same hash, on both sides
insert('postgres', 'e', $k{e});     # versions: 3 here, 2 there

my $pid = $pg->follower($t, '--poll', '100ms');

is(wait_valid($k{a}, 1), 1, 'the follower serves the key of PostgreSQL');

# (a) a second follower, of another database, while the first runs:
# refused (exit 1: the unit starts it again, as the other may be a
# follow --once from cron that ends soon), the node unchanged

my ($rc, $out, $err) = $t->ctl('follow', '--once',
                               $pg->conninfo('other'));
is($rc, 1, 'a second follower on the database: exit 1, restarted');
like($err, qr/^apikeyctl: follow: another apikeyctl follow is running on ".*": one follower a database$/m,
     'a second follower: the reason');
is(valid($k{b}), 0, 'a second follower: the node unchanged');

# another writer: an import by hand of a key PostgreSQL never had

$t->ctl_ok({ input => "key,id\n$k{b},b\n" }, 'import', '-');

is(wait_valid($k{b}, 0), 0,
   'the first follower removes the key its PostgreSQL never had');
is(wait_valid($k{a}, 1), 1,
   'and serves its key again');
like(follow_log(), qr/^apikeyctl: follow: the database was written by another process since the follower's last commit \(generation \d+, not \d+\): a full synchronisation is due$/m,
     'the other writer is logged');
like(follow_log(), qr/^apikeyctl: follow: full synchronisation \(the database was written by another process since the follower's last commit\): 3 keys at version 3/m,
     'and the full synchronisation says why');

my $list = $t->ctl_ok('list', '--format', 'json');
like($list, qr/"id":"c2"/, 'the shared hash has the id of the followed table');

# (b) a restore of a backup older than a delete

insert('postgres', 'd', $k{d});
is(wait_valid($k{d}, 1), 1, 'a new key is served');

my $backup = $t->prefix() . '/backup.mdb';
$t->ctl_ok('backup', $backup);

$pg->psql("DELETE FROM apikey_keys WHERE id = 'd'");
is(wait_valid($k{d}, 0), 0, 'deleted in PostgreSQL: not served');

$t->ctl_ok('restore', '--force', $backup);

is(wait_valid($k{d}, 0), 0,
   'a restored backup does not bring back a key PostgreSQL deleted');
like(valid($k{a}) ? 'ok' : 'no', qr/ok/, 'the other keys stay');

my @lines = follow_log() =~ /(the database was written by another process.*is due)$/mg;
is(scalar @lines, 2, 'logged once each time');

kill 'TERM', $pid;
waitpid($pid, 0);
is($? >> 8, 0, 'the follower exits 0 on SIGTERM');

# (c) at start-up: a gen by hand while no follower runs

my $local = $t->gen('--id', 'by-hand');
is(valid($local), 1, 'a key made by hand on a followed database');

($rc, $out, $err) = $t->ctl('follow', '--once', $pg->conninfo());
is($rc, 0, 'the next round exits 0');
like($err, qr/^apikeyctl: follow: full synchronisation \(the database was written by another process since the follower's last commit\)/m,
     'the next round notices the write at start-up');
is(valid($local), 0, 'and undoes it');
is(valid($k{a}), 1, 'the keys of PostgreSQL stay');

($rc, $out, $err) = $t->ctl('follow', '--once', $pg->conninfo());
unlike($err, qr/full synchronisation/, 'then rounds of changes again');

# (d) a follower of another database, then this one started again:
# its versions are not this database's (meta "follow_source")

($rc, $out, $err) = $t->ctl('follow', '--once', $pg->conninfo('other'));
like($err, qr/full synchronisation \((?:PostgreSQL's versions went back|another PostgreSQL database than the one followed so far)\)/,
     'a follower of the other database: in full');
is(valid($k{b}), 1, 'the other database\'s keys');

($rc, $out, $err) = $t->ctl('follow', '--once', $pg->conninfo());
is($rc, 0, 'this database\'s follower started again: exit 0');
like($err, qr/^apikeyctl: follow: full synchronisation \(another PostgreSQL database than the one followed so far\)/m,
     'it notices another database was followed and synchronises in full');
is(valid($k{b}), 0, 'the other database\'s key is gone');
is(valid($k{a}), 1, 'this database\'s key is back');

# a replica is the same database: no full synchronisation

my $sb = $pg->standby();
$pg->psql("INSERT INTO apikey_keys (hash, id) VALUES "
          . "(decode('" . hash($k{e}) . "', 'hex'), 'e2') "
          . "ON CONFLICT DO NOTHING");
($rc, $out, $err) = $t->ctl('follow', '--once', $sb->conninfo());
is($rc, 0, 'a replica of the database followed: exit 0');
unlike($err, qr/full synchronisation/, 'a replica: rounds of changes');

# check accepts the meta entries

($rc, $out, $err) = $t->ctl('check');
is($rc, 0, 'check accepts follow_generation and follow_source') or diag($out, $err);

unlike(follow_log() . $err, qr/ak_[A-Za-z0-9]{20}/, 'no plaintext key in the logs');

done_testing();
