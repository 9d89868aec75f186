#!/usr/bin/perl

# Tests apikeyctl follow against a streaming replica: a second real
# PostgreSQL made with pg_basebackup -R from the first and started as
# its standby.  No NOTIFY arrives on a standby (LISTEN is refused
# there): the follower polls (the default second), synchronises from the
# replica, and converges on inserts, updates and deletes committed on
# the primary, and on a truncation there.

use strict;
use warnings;

use Test::More;

use JSON::PP;
use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Pg;

my $t = Apikey::Harness->new()->require_apikeyctl();

my $why = Apikey::Pg::unavailable() // Apikey::Pg::matrix_skip();
plan skip_all => $why if $why;

$t->init_db();

my $primary = Apikey::Pg->new();
$primary->psql($t->ctl_ok('follow', '--print-schema'));

my (%k, @plain);

for my $id (qw(a b c d)) {
    $k{$id} = $t->gen('--id', "tmp-$id");
    $t->ctl_ok('revoke', "tmp-$id");
    push @plain, $k{$id};
}

sub hash {
    my ($key) = @_;
    my $h = $t->ctl_ok({ input => $key }, 'hash');
    chomp $h;
    return $h;
}

sub insert {
    my ($id) = @_;
    $primary->psql("INSERT INTO apikey_keys (hash, id) VALUES (decode('"
                   . hash($k{$id}) . "', 'hex'), '$id')");
}

insert('a');
insert('b');

my $standby = $primary->standby();

is($standby->psql("SELECT pg_is_in_recovery()"), 't',
   'the second server is a standby');

my $pid = $standby->follower($t);

# the database reaches what the primary committed, by polling

sub verify {
    my ($key) = @_;
    my ($rc) = $t->ctl('verify', $key);
    return $rc;
}

sub converge {
    my (%want) = @_;

    my $t0 = time();
    my $end = $t0 + scaled(20);

    while (time() < $end) {
        my $ok = 1;

        for my $id (keys %want) {
            $ok = 0, last if verify($k{$id}) != $want{$id};
        }

        return time() - $t0 if $ok;

        sleep 0.1;
    }

    return undef;
}

ok(defined converge(a => 0, b => 0), 'synchronised from the replica');

my @took;

insert('c');
push @took, converge(c => 0);
ok(defined $took[-1], 'insert on the primary reaches the follower');

$primary->psql("UPDATE apikey_keys SET disabled = true WHERE id = 'a'");
push @took, converge(a => 4);
ok(defined $took[-1], 'update on the primary reaches the follower');

$primary->psql("DELETE FROM apikey_keys WHERE id = 'b'");
push @took, converge(b => 4);
ok(defined $took[-1], 'delete on the primary reaches the follower');

$primary->psql("TRUNCATE apikey_keys");
insert('d');
push @took, converge(c => 4, d => 0);
ok(defined $took[-1], 'truncation on the primary reaches the follower');

diag(sprintf("through the replica, polled each second: %s s",
             join(', ', map { defined $_ ? sprintf('%.1f', $_) : '-' }
                            @took)));

my $max = $primary->psql("SELECT greatest((SELECT max(version) FROM "
                         . "apikey_keys), (SELECT pruned FROM "
                         . "apikey_state))");
my $st = decode_json($t->ctl_ok('stats', '--format', 'json'));
is($st->{follow_version}, $max, 'the version of the primary reached');

kill 'TERM', $pid;
waitpid($pid, 0);
is($?, 0, 'follower exits 0 on SIGTERM');

my $log = Apikey::Harness::slurp($t->prefix() . '/logs/follow.log');
like($log, qr/full synchronisation \(tombstones pruned or the table truncated since\)/,
     'the truncation resynchronised in full');
unlike($log, qr/unreachable/, 'no error against the standby');

my @leaked = grep { index($log, $_) >= 0 } @plain;
is(scalar @leaked, 0, 'no plaintext key in the log');

done_testing();
