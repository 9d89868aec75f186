#!/usr/bin/perl

# Tests a fleet: three nginx nodes, each with its own database and its
# own apikeyctl follow, behind one real PostgreSQL.  100 changes
# committed in PostgreSQL (a key inserted, given a scope and deprived of
# it, disabled, enabled, expired, given its life back, deleted), each
# seen by all three nodes; the time from the commit to the first
# request that sees it on every node is measured: p50 and p99 shown,
# p99 under a second (the acceptance line of the fleet).  At the end
# every database holds what the table holds, the followers exit 0 on
# SIGTERM, and the error logs are clean.

use strict;
use warnings;

use Test::More;

use File::Copy qw(copy);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(http_get scaled);
use Apikey::Pg;

my $t1 = Apikey::Harness->new()->require_all();

my $why = Apikey::Pg::unavailable() // Apikey::Pg::matrix_skip();
plan skip_all => $why if $why;

my @nodes = ($t1, Apikey::Harness->new(), Apikey::Harness->new());

# one secret for the fleet: the table holds hashes keyed with it

$t1->init_db();

for my $t (@nodes[1, 2]) {
    copy($t1->secret(), $t->secret()) or die "copy: $!";
    chmod 0600, $t->secret();
    $t->init_db();
}

my $pg = Apikey::Pg->new();
$pg->psql($t1->ctl_ok('follow', '--print-schema'));

for my $t (@nodes) {
    $t->write_config(<<'EOF');
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;

        location / {
            apikey on;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }

        location /admin {
            apikey on;
            apikey_scope admin;
            proxy_pass http://127.0.0.1:%%PORT_1%%;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%%;

        location / {
            return 200 "backend\n";
        }
    }
EOF
    $t->start();
}

# a key already there before the followers start

my @keys;

sub key {
    my $id = 'tmp' . scalar @keys;
    my $key = $t1->gen('--id', $id);
    $t1->ctl_ok('revoke', $id);
    push @keys, $key;
    return $key;
}

sub hash {
    my ($key) = @_;
    my $h = $t1->ctl_ok({ input => $key }, 'hash');
    chomp $h;
    return $h;
}

my $first = key();
$pg->psql("INSERT INTO apikey_keys (hash, id) VALUES (decode('"
          . hash($first) . "', 'hex'), 'first')");

my @pids = map { $pg->follower($_, '--poll', '1s') } @nodes;

# every node serves the first key once its follower has synchronised

sub status {
    my ($t, $uri, $key) = @_;
    return http_get($t->port(0), $uri, 'X-API-Key' => $key)->{status};
}

for my $i (0 .. 2) {
    my $end = time() + scaled(20);
    my $s;

    do {
        $s = status($nodes[$i], '/', $first);
    } while ($s != 200 && time() < $end && sleep 0.05);

    is($s, 200, "node $i: the first synchronisation served");
}

# the changes: one statement each, committed through one psql session;
# then every node is asked, round after round, until each has answered
# as it should

my $session = $pg->session();
my @latency;
my $n = 0;
my $missed = 0;

sub change {
    my ($what, $sql, $uri, $key, $status) = @_;

    my $t0 = time();
    $session->do($sql);

    my %seen;
    my $end = $t0 + scaled(10);

    while (keys %seen < 3 && time() < $end) {
        for my $i (grep { !exists $seen{$_} } 0 .. 2) {
            $seen{$i} = time() if status($nodes[$i], $uri, $key) == $status;
        }
    }

    $n++;

    if (keys %seen < 3) {
        $missed++;
        diag("change $n ($what) not seen by every node in 10 s");
        return;
    }

    my ($last) = sort { $b <=> $a } values %seen;
    push @latency, $last - $t0;
}

for my $k (1 .. 13) {
    my $key = key();
    my $h = hash($key);
    my $id = "fleet$k";
    my $w = "WHERE id = '$id'";

    my @steps = (
        [ 'insert', "INSERT INTO apikey_keys (hash, id) "
                    . "VALUES (decode('$h', 'hex'), '$id')", '/', 200 ],
        [ 'scope added', "UPDATE apikey_keys SET scopes = 'admin' $w",
          '/admin', 200 ],
        [ 'scope removed', "UPDATE apikey_keys SET scopes = 'read' $w",
          '/admin', 403 ],
        [ 'disabled', "UPDATE apikey_keys SET disabled = true $w", '/', 401 ],
        [ 'enabled', "UPDATE apikey_keys SET disabled = false $w", '/', 200 ],
        [ 'expired', "UPDATE apikey_keys SET expires = now() "
                     . "- interval '1 second' $w", '/', 401 ],
        [ 'unexpired', "UPDATE apikey_keys SET expires = NULL $w", '/',
          200 ],
        [ 'deleted', "DELETE FROM apikey_keys $w", '/', 401 ],
    );

    for my $s (@steps) {
        last if $n == 100;
        change($s->[0], $s->[1], $s->[2], $key, $s->[3]);
    }
}

is($n, 100, '100 changes committed');
is($missed, 0, 'every change seen by every node');

my @sorted = sort { $a <=> $b } @latency;

sub pct {
    my ($p) = @_;
    return 0 unless @sorted;
    my $i = int($p / 100 * @sorted + 0.5) - 1;
    $i = 0 if $i < 0;
    $i = $#sorted if $i > $#sorted;
    return $sorted[$i];
}

diag(sprintf("commit to every node: p50 %.1f ms, p99 %.1f ms, max %.1f ms "
             . "over %d changes", 1000 * pct(50), 1000 * pct(99),
             1000 * ($sorted[-1] // 0), scalar @sorted));

cmp_ok(pct(99), '<', 1, 'p99 from commit to every node under 1 s');

# every database holds what the table holds

my $table = join ' ', sort split /\n/,
                $pg->psql("SELECT id FROM apikey_keys");

for my $i (0 .. 2) {
    my @ids = map { decode_json($_)->{id} }
              split /\n/, $nodes[$i]->ctl_ok('list', '--format', 'json');
    is(join(' ', sort @ids), $table, "node $i: the keys of the table");
}

# SIGTERM: each follower ends its round and exits 0

for my $pid (@pids) {
    kill 'TERM', $pid;
}

for my $i (0 .. 2) {
    my $end = time() + scaled(10);
    my $got = 0;

    while (time() < $end && ($got = waitpid($pids[$i], WNOHANG)) == 0) {
        sleep 0.05;
    }

    is($got == $pids[$i] ? $? : 'running', 0, "node $i: follower exits 0");
    kill 'KILL', $pids[$i] unless $got == $pids[$i];
}

for my $i (0 .. 2) {
    my $log = Apikey::Harness::slurp($nodes[$i]->prefix()
                                     . '/logs/follow.log');
    my @leaked = grep { index($log, $_) >= 0 } @keys;
    is(scalar @leaked, 0, "node $i: no plaintext key in the follower's log");
}

$_->stop() for @nodes;
$_->check_log() for @nodes;

done_testing();
