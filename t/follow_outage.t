#!/usr/bin/perl

# Tests a PostgreSQL outage under load: two nginx nodes, each with its
# own database and follower, serve a load that knows the right answer
# (Apikey::Load) while PostgreSQL is stopped for a few seconds and
# started again.  No node stops serving (no wrong decision, no 5xx); each
# follower logs the outage once, however many times it retries, and once
# that it follows again; changes committed as soon as PostgreSQL is back
# reach both nodes; stats shows the follower's version and lag.

use strict;
use warnings;

use Test::More;

use File::Copy qw(copy);
use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(http_get scaled);
use Apikey::Load;
use Apikey::Pg;

my $t1 = Apikey::Harness->new()->require_all();

my $why = Apikey::Pg::unavailable() // Apikey::Pg::matrix_skip();
plan skip_all => $why if $why;

my @nodes = ($t1, Apikey::Harness->new());

$t1->init_db();
copy($t1->secret(), $nodes[1]->secret()) or die "copy: $!";
chmod 0600, $nodes[1]->secret();
$nodes[1]->init_db();

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
            empty_gif;
        }
    }
EOF
    $t->start();
}

# keys: A stay valid, R are deleted and N inserted once PostgreSQL is
# back, U are never in the table

my (%keys, @plain);

for my $c (qw(A R N U)) {
    for my $i (1 .. 5) {
        my $key = $t1->gen('--id', "tmp$c$i");
        $t1->ctl_ok('revoke', "tmp$c$i");
        $keys{"$c$i"} = $key;
        push @plain, $key;
    }
}

sub hash {
    my ($key) = @_;
    my $h = $t1->ctl_ok({ input => $key }, 'hash');
    chomp $h;
    return $h;
}

sub rows {
    my ($c) = @_;
    return join(', ', map { "(decode('" . hash($keys{"$c$_"}) . "', 'hex'), "
                            . "'$c$_')" } 1 .. 5);
}

$pg->psql("INSERT INTO apikey_keys (hash, id) VALUES " . rows('A') . ", "
          . rows('R'));

my @pids = map { $pg->follower($_, '--poll', '200ms') } @nodes;

sub status {
    my ($t, $key) = @_;
    return http_get($t->port(0), '/', 'X-API-Key' => $key)->{status};
}

sub wait_status {
    my ($status, @keys) = @_;
    my $end = time() + scaled(20);

    for my $t (@nodes) {
        for my $key (@keys) {
            while (status($t, $key) != $status) {
                return 0 if time() > $end;
                sleep 0.05;
            }
        }
    }

    return 1;
}

ok(wait_status(200, $keys{A1}, $keys{R5}), 'both nodes synchronised');

# the load, on both nodes

my @loads;

for my $i (0 .. 1) {
    my $load = Apikey::Load->new(port => $nodes[$i]->port(0),
                                 dir => $nodes[$i]->prefix() . '/load',
                                 clients => 2, delay => 0.002);

    for my $c (qw(A R N U)) {
        $load->key("$c$_", $keys{"$c$_"}, { A => 'valid', R => 'deleted',
                   N => 'added', U => 'unknown' }->{$c},
                   $c eq 'A' || $c eq 'R' ? 200 : 401)
            for 1 .. 5;
    }

    $load->start();
    push @loads, $load;
}

wait_all();

# Load's methods use $_: no aliasing loop over the loads

sub wait_all {
    for my $load (@loads) {
        $load->wait_requests(300);
    }
}

# PostgreSQL stopped for a few seconds: the followers retry, the nodes
# serve what they have

$pg->stop('fast');

my $down = time();
wait_all();
sleep(3 - (time() - $down)) if time() - $down < 3;

$pg->start();

# the changes, committed at once: the followers are in their backoff

my %change = ((map { ("R$_" => 401) } 1 .. 5), (map { ("N$_" => 200) } 1 .. 5));
my @ev = map { $_->pending(\%change, name => 'after-outage') } @loads;

my $t0 = time();
$pg->psql("BEGIN; DELETE FROM apikey_keys WHERE id LIKE 'R%'; "
          . "INSERT INTO apikey_keys (hash, id) VALUES " . rows('N')
          . "; COMMIT");

my $back = wait_status(401, map { $keys{"R$_"} } 1 .. 5)
           && wait_status(200, map { $keys{"N$_"} } 1 .. 5);
my $took = time() - $t0;

$loads[$_]->done($ev[$_]) for 0 .. 1;

ok($back, 'both nodes converged after the outage');
diag(sprintf("after %.1f s of outage, the change committed on restart "
             . "reached both nodes in %.1f s", $t0 - $down, $took));

wait_all();
$_->stop() for my @stop = @loads;

$loads[$_]->ok(name => "node $_ through the outage") for 0 .. 1;

# the log: one line for the outage, one when following again

for my $i (0 .. 1) {
    my $log = Apikey::Harness::slurp($nodes[$i]->prefix()
                                     . '/logs/follow.log');

    my @down = $log =~ /^apikeyctl: follow: PostgreSQL unreachable: the keys of version \d+ are served; trying again$/mg;
    is(scalar @down, 1, "node $i: the outage logged once");

    my @up = $log =~ /^apikeyctl: follow: following PostgreSQL at version \d+$/mg;
    is(scalar @up, 2, "node $i: following logged at start and after");

    my @leaked = grep { index($log, $_) >= 0 } @plain;
    is(scalar @leaked, 0, "node $i: no plaintext key in the log");

    my $st = decode_json($nodes[$i]->ctl_ok('stats', '--format', 'json'));
    my $max = $pg->psql("SELECT greatest((SELECT max(version) FROM "
                        . "apikey_keys), (SELECT max(version) FROM "
                        . "apikey_tombstones))");
    is($st->{follow_version}, $max, "node $i: stats: the version reached");
    # idle, follow_synced is written every 30 s only

    cmp_ok($st->{follow_lag}, '<=', 35, "node $i: stats: lag of an idle "
                                        . "follower");
}

for my $pid (@pids) {
    kill 'TERM', $pid;
    waitpid($pid, 0);
    is($?, 0, 'follower exits 0 on SIGTERM');
}

$_->stop() for @nodes;
$_->check_log() for @nodes;

done_testing();
