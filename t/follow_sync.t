#!/usr/bin/perl

# Tests apikeyctl follow against a real PostgreSQL, one round at a time
# (--once): the schema of --print-schema loads; the first
# synchronisation replaces what the database held; inserts, updates
# (disabled, expiry, scopes, id, hash) and deletes; a row import would
# refuse is not served and is named by its id; pruned tombstones, a
# truncation and versions gone back synchronise in full, and pruning
# behind the follower does not; keys loaded from gen and export; stats;
# usage errors; PostgreSQL away; no plaintext key anywhere.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use POSIX ();
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(write_file);
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable();
plan skip_all => $why if $why;

$t->init_db();

my $pg = Apikey::Pg->new();
my $conn = $pg->conninfo();
my ($rc, $out, $err);
my $logs = '';
my @plain;

# the schema

($rc, $out, $err) = $t->ctl('follow', '--print-schema');
is($rc, 0, 'print-schema exits 0');
like($out, qr/^CREATE TABLE apikey_keys \(/m, 'print-schema: the table');
like($out, qr/^CREATE TABLE apikey_tombstones \(/m,
     'print-schema: the tombstones');
like($out, qr/pg_notify\('apikey_keys'/, 'print-schema: NOTIFY');
is($err, '', 'print-schema: nothing on stderr');

my $schema = $out;

eval { $pg->psql($schema) };
is($@, '', 'the schema loads into PostgreSQL');

# keys, their hashes, rows

sub key {
    my $key = $t->gen('--id', 'tmp-' . scalar @plain);
    $t->ctl_ok('revoke', 'tmp-' . scalar @plain);
    push @plain, $key;
    return $key;
}

sub hash {
    my ($key) = @_;
    my $h = $t->ctl_ok({ input => $key }, 'hash');
    chomp $h;
    return $h;
}

sub sql { $pg->psql(@_) }

sub follow {
    my (@args) = @_;
    my @r = $t->ctl('follow', '--once', @args ? @args : $conn);
    $logs .= $r[2];
    return @r;
}

sub verify {
    my ($key) = @_;
    my ($rc) = $t->ctl('verify', $key);
    return $rc;
}

sub ids {
    my @list = map { decode_json($_) }
               split /\n/, $t->ctl_ok('list', '--format', 'json');
    return join ' ', sort map { $_->{id} } @list;
}

sub stats {
    return decode_json($t->ctl_ok('stats', '--format', 'json'));
}

my %k = map { $_ => key() } qw(k1 k2 k3 k4 k5 k6 k7 local);

sub insert {
    my ($id, $cols) = @_;
    my $h = hash($k{$id});
    my %c = (%{ $cols // {} });
    my $names = join '', map { ", $_" } sort keys %c;
    my $values = join '', map { ", $c{$_}" } sort keys %c;
    sql("INSERT INTO apikey_keys (hash, id$names) "
        . "VALUES (decode('$h', 'hex'), '$id'$values)");
}

# the first synchronisation: the table replaces what the database held

$t->ctl_ok({ input => "key,id\n$k{local},local\n" }, 'import', '-');

insert('k1', { scopes => "'a,b'", subject => "'acme'" });
insert('k2', { disabled => 'true' });
insert('k3', { expires => "now() - interval '1 day'" });
insert('k4', { scopes => "'bad scope'" });

($rc, $out, $err) = follow();
is($rc, 0, 'first sync exits 0');
like($err, qr/^apikeyctl: follow: full synchronisation \(a first synchronisation\): 3 keys at version 4 \(was 0\), 1 rows not served$/m,
     'first sync: the line');
like($err, qr/^apikeyctl: follow: row "k4" of version 4: invalid scopes "bad scope".*; its key is not served$/m,
     'first sync: the refused row named by its id');
is(ids(), 'k1 k2 k3', 'first sync: the keys of the table, no other');
is(verify($k{k1}), 0, 'first sync: valid key accepted');
is(verify($k{k2}), 4, 'first sync: disabled key rejected');
is(verify($k{k3}), 4, 'first sync: expired key rejected');
is(verify($k{k4}), 4, 'first sync: refused row not served');
is(verify($k{local}), 4, 'first sync: a key the table lacks removed');

my $st = stats();
is($st->{follow_version}, 4, 'stats: follow_version');
like($st->{follow_synced}, qr/^\d{4}-\d\d-\d\dT/, 'stats: follow_synced');
cmp_ok($st->{follow_lag}, '<=', 60, 'stats: follow_lag');

my $list = decode_json($t->ctl_ok('show', 'k1', '--format', 'json'));
is($list->{scopes}, 'a,b', 'first sync: scopes');
is($list->{subject}, 'acme', 'first sync: subject');

# nothing changed: nothing written but the time of the poll

my $gen = stats()->{generation};
($rc, $out, $err) = follow();
is($rc, 0, 'a round without changes exits 0');
is(stats()->{generation}, $gen, 'no change: the generation stays');

# changes

sql("UPDATE apikey_keys SET disabled = false WHERE id = 'k2'");
sql("UPDATE apikey_keys SET expires = now() - interval '1 hour' "
    . "WHERE id = 'k1'");
sql("UPDATE apikey_keys SET scopes = 'ok' WHERE id = 'k4'");
sql("DELETE FROM apikey_keys WHERE id = 'k3'");
insert('k5', { plan => "'gold'" });
sql("UPDATE apikey_keys SET id = 'k5b' WHERE id = 'k5'");
insert('k6');
sql("UPDATE apikey_keys SET hash = decode('" . hash($k{k7})
    . "', 'hex') WHERE id = 'k6'");

($rc, $out, $err) = follow();
is($rc, 0, 'changes exit 0');
unlike($err, qr/full synchronisation/, 'changes: no full sync');
is(ids(), 'k1 k2 k4 k5b k6', 'changes: the ids');
is(verify($k{k1}), 4, 'changes: expired now');
is(verify($k{k2}), 0, 'changes: enabled again');
is(verify($k{k3}), 4, 'changes: deleted');
is(verify($k{k4}), 0, 'changes: corrected row served');
is(verify($k{k5}), 0, 'changes: renamed key served');
is(verify($k{k6}), 4, 'changes: replaced hash gone');
is(verify($k{k7}), 0, 'changes: new hash of an id served');
is(decode_json($t->ctl_ok('show', 'k5b', '--format', 'json'))->{plan},
   'gold', 'changes: plan');

my $max = sql("SELECT max(version) FROM (SELECT version FROM apikey_keys "
              . "UNION ALL SELECT version FROM apikey_tombstones) v");
is(stats()->{follow_version}, $max, 'changes: version reached');

# in one batch, a row deleted and its hash given to another row, whose
# id is then given to a new row: each key under its id, ids and keys
# in step (apikeyctl check)

my ($ka, $kb, $kc) = (key(), key(), key());

sql("INSERT INTO apikey_keys (hash, id) VALUES "
    . "(decode('" . hash($ka) . "', 'hex'), 'ma'), "
    . "(decode('" . hash($kb) . "', 'hex'), 'mb')");
follow();

sql("BEGIN; DELETE FROM apikey_keys WHERE id = 'ma'; "
    . "UPDATE apikey_keys SET hash = decode('" . hash($ka) . "', 'hex'), "
    . "id = 'mc' WHERE id = 'mb'; "
    . "INSERT INTO apikey_keys (hash, id) "
    . "VALUES (decode('" . hash($kc) . "', 'hex'), 'mb'); COMMIT");

($rc, $out, $err) = follow();
is($rc, 0, 'moved: exit 0');
unlike($err, qr/full synchronisation/, 'moved: no full sync');
is(verify($ka), 0, 'moved: the hash of a deleted row, under another id');
is(verify($kb), 4, 'moved: the replaced hash gone');
is(verify($kc), 0, 'moved: a new row under an id given up');
like(ids(), qr/^k1 k2 k4 k5b k6 mb mc$/, 'moved: the ids');
is(($t->ctl('check'))[0], 0, 'moved: apikeyctl check: ids and keys in step');

sql("DELETE FROM apikey_keys WHERE id IN ('mb', 'mc')");
follow();
is(ids(), 'k1 k2 k4 k5b k6', 'moved: deleted again');

# an update no node can serve: the key goes (fail closed)

sql("UPDATE apikey_keys SET scopes = 'no good' WHERE id = 'k2'");
($rc, $out, $err) = follow();
is($rc, 0, 'refused update exits 0');
like($err, qr/^apikeyctl: follow: row "k2" of version \d+: invalid scopes/m,
     'refused update: named');
is(verify($k{k2}), 4, 'refused update: the key is not served');
sql("UPDATE apikey_keys SET scopes = NULL WHERE id = 'k2'");
follow();
is(verify($k{k2}), 0, 'update corrected: served again');

# a key in a column where none belongs: refused, never shown

sql("UPDATE apikey_keys SET subject = '$k{local}' WHERE id = 'k4'");
($rc, $out, $err) = follow();
like($err, qr/^apikeyctl: follow: row "k4" of version \d+: .*holds an API key \(not shown\)/m,
     'a key in subject: refused');
is(verify($k{k4}), 4, 'a key in subject: not served');
sql("UPDATE apikey_keys SET subject = NULL WHERE id = 'k4'");
follow();
is(verify($k{k4}), 0, 'subject corrected: served again');

# pruning behind the follower: nothing to redo

sql("DELETE FROM apikey_keys WHERE id = 'k5b'");
($rc, $out, $err) = follow();
is(verify($k{k5}), 4, 'deleted key gone');
my $tombstones = sql("SELECT count(*) FROM apikey_tombstones");
cmp_ok($tombstones, '>=', 4, 'tombstones there');
is(sql("SELECT apikey_prune('0')"), $tombstones, 'tombstones pruned');
($rc, $out, $err) = follow();
is($rc, 0, 'pruned behind the follower: exit 0');
unlike($err, qr/full synchronisation/, 'pruned behind: no full sync');

# pruned ahead of the follower: in full

sql("DELETE FROM apikey_keys WHERE id = 'k6'");
sql("SELECT apikey_prune('0')");
($rc, $out, $err) = follow();
like($err, qr/full synchronisation \(tombstones pruned or the table truncated since\): 3 keys/,
     'pruned ahead: full sync');
is(ids(), 'k1 k2 k4', 'pruned ahead: the delete applied');

# tombstones deleted by hand count as pruned

sql("DELETE FROM apikey_keys WHERE id = 'k1'");
sql("DELETE FROM apikey_tombstones");
($rc, $out, $err) = follow();
like($err, qr/full synchronisation \(tombstones pruned/,
     'tombstones deleted by hand: full sync');
is(ids(), 'k2 k4', 'tombstones deleted by hand: the delete applied');

# truncation

sql("TRUNCATE apikey_keys");
($rc, $out, $err) = follow();
like($err, qr/full synchronisation \(tombstones pruned or the table truncated since\): 0 keys/,
     'truncated: full sync');
is(ids(), '', 'truncated: no keys');
is(verify($k{k4}), 4, 'truncated: key rejected');

# another server, whose versions are behind ours

sql("CREATE DATABASE other");
$pg->psql($schema, db => 'other');
$pg->psql("INSERT INTO apikey_keys (hash, id) VALUES (decode('"
          . hash($k{k1}) . "', 'hex'), 'o1')", db => 'other');
($rc, $out, $err) = follow($pg->conninfo('other'));
like($err, qr/full synchronisation \(PostgreSQL's versions went back\): 1 keys at version 1/,
     'versions back: full sync');
is(ids(), 'o1', 'versions back: the keys of the other server');
is(verify($k{k1}), 0, 'versions back: its key served');

# keys made by gen, loaded as their hashes through export

my $scratch = $t->prefix() . '/scratch';
$t->ctl_ok({ db => $scratch }, 'init');
my $gk = decode_json($t->ctl_ok({ db => $scratch }, 'gen', '--id', 'g1',
                                '--scopes', 'x', '--format', 'json'));
push @plain, $gk->{key};

my $csv = "$pg->{base}/export.csv";
write_file($csv, $t->ctl_ok({ db => $scratch }, 'export', '--format',
                            'csv'));
chmod 0644, $csv;

$pg->psql(<<"EOF", db => 'other');
CREATE TEMP TABLE load (hash text, id text, subject text, scopes text,
    plan text, expires timestamptz, not_before timestamptz,
    disabled boolean, hint text, created timestamptz);
\\copy load FROM '$csv' WITH (FORMAT csv, HEADER, FORCE_NULL (expires, not_before))
INSERT INTO apikey_keys (hash, id, subject, scopes, plan, expires,
    not_before, disabled, hint, created)
SELECT decode(hash, 'hex'), id, nullif(subject, ''), nullif(scopes, ''),
    nullif(plan, ''), expires, not_before, disabled, nullif(hint, ''),
    created FROM load;
EOF

($rc, $out, $err) = follow($pg->conninfo('other'));
is($rc, 0, 'exported rows: exit 0');
is(verify($gk->{key}), 0, 'exported rows: the generated key served');
is(decode_json($t->ctl_ok('show', 'g1', '--format', 'json'))->{hint},
   $gk->{hint}, 'exported rows: the hint kept');

# an empty conninfo: libpq's variables, as the systemd unit may give them

{
    local @ENV{qw(PGHOST PGPORT PGUSER PGDATABASE)} =
        ($pg->{base}, $pg->{port}, 'postgres', 'other');
    ($rc, $out, $err) = follow('');
}

is($rc, 0, 'empty conninfo, PG variables: exit 0');
is(stats()->{follow_version},
   $pg->psql("SELECT max(version) FROM apikey_keys", db => 'other'),
   'empty conninfo, PG variables: followed');

# a database without the schema: exit 1, PostgreSQL's reason, nothing
# changed

($rc, $out, $err) = follow($pg->conninfo('template1'));
is($rc, 1, 'no schema: exit 1');
like($err, qr/^apikeyctl: follow: read PostgreSQL: ERROR:  relation "apikey_state" does not exist/m,
     'no schema: the reason');
is(verify($gk->{key}), 0, 'no schema: keys still served');

# usage

{
    # no conninfo: APIKEY_FOLLOW_CONNINFO, then libpq's variables
    # (t/follow_daemon.t); here neither reaches a server

    local %ENV = %ENV;
    delete @ENV{grep { /^PG/ } keys %ENV};
    $ENV{APIKEY_FOLLOW_CONNINFO} = "host=$pg->{base}/none";

    ($rc, $out, $err) = $t->ctl('follow', '--once');
    is($rc, 1, 'no conninfo: APIKEY_FOLLOW_CONNINFO tried, exit 1');
    like($err, qr/connect to PostgreSQL/, 'no conninfo: libpq says why');
}
($rc, $out, $err) = $t->ctl('follow', $conn, 'x');
is($rc, 2, 'two conninfos: exit 2');
($rc, $out, $err) = $t->ctl('follow', '--poll', '5x', $conn);
is($rc, 2, 'bad --poll: exit 2');
like($err, qr/invalid --poll "5x"/, 'bad --poll: message');
($rc, $out, $err) = $t->ctl('follow', '--poll', '1ms', $conn);
is($rc, 2, '--poll below 10ms: exit 2');
($rc, $out, $err) = $t->ctl('follow', '--print-schema', $conn);
is($rc, 2, 'print-schema with an argument: exit 2');
($rc, $out, $err) = $t->ctl('follow', "host=$k{k1}");
is($rc, 2, 'a key as conninfo: exit 2');
unlike($err, qr/\Q$k{k1}\E/, 'a key as conninfo: not shown');

# PostgreSQL away: exit 1, the database as it was

$pg->stop();
($rc, $out, $err) = follow($pg->conninfo('other'));
is($rc, 1, 'PostgreSQL stopped: exit 1');
like($err, qr/^apikeyctl: follow: connect to PostgreSQL: /m,
     'PostgreSQL stopped: the reason');
is(verify($gk->{key}), 0, 'PostgreSQL stopped: keys still served');

($rc, $out, $err) = $t->ctl('check');
is($rc, 0, 'check accepts the follower\'s meta');

$pg->start();

# the database replaced under a running follower: it says so and exits
# 1 (systemd starts a new one, which synchronises the new database)

my $pid = $pg->follower($t, '--poll', '100ms');
my $flog = $t->prefix() . '/logs/follow.log';
my $end = time() + 20;

sleep 1 while Apikey::Harness::slurp($flog) !~ /following/ && time() < $end;
like(Apikey::Harness::slurp($flog), qr/following PostgreSQL/,
     'running follower: following');

rename($t->db(), $t->db() . '.old') or die "rename: $!";
$t->init_db();

my $got = 0;

while (time() < $end) {
    $got = waitpid($pid, POSIX::WNOHANG());
    last if $got == $pid;
    sleep 0.1;
}

is($got == $pid ? $? >> 8 : 'running', 1,
   'database replaced: the follower exits 1');
like(Apikey::Harness::slurp($flog),
     qr/^apikeyctl: follow: ".*\/data\.mdb" is no longer the database followed \(moved, replaced or deleted\): exiting/m,
     'database replaced: said so');
kill 'KILL', $pid if $got != $pid;
$logs .= Apikey::Harness::slurp($flog);

# no plaintext key in any line the follower wrote, nor in PostgreSQL

my $dump = $pg->psql("SELECT * FROM apikey_keys", db => 'other')
           . $pg->psql("SELECT * FROM apikey_tombstones");
my @leaked = grep { index($logs . $dump, $_) >= 0 } @plain;
is(scalar @leaked, 0, 'no plaintext key in the logs or PostgreSQL');

done_testing();
