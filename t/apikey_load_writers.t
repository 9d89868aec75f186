#!/usr/bin/perl

# Tests concurrent writers while nginx serves under load, with two
# workers (issue 9): import, revoke, rotate and restore run in loops of
# their own, at the same time, while clients (Apikey::Load) send valid,
# revoked, rotated, added, unknown, expired and malformed keys, and
# every answer must be the one of its key at that moment.  The database
# starts with a map of 1 MB, so the imports grow it while the workers
# have it mapped (MDB_MAP_RESIZED in the workers).
#
# A restore brings back the backup made at the start, whose content
# the test knows: it waits for the other writers to finish the command
# they run (a writer-preferring lock), so that each key's changes come
# one after the other; import, revoke and rotate change keys of their
# own and overlap freely.  A rotated key's grace ends by itself: the
# rotate loop keeps restores out until it has ended.

use strict;
use warnings;

use Test::More;

use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Load qw(word unknown_keys malformed_keys);
use Apikey::Writers;

my $t = Apikey::Harness->new()->require_all();

my $dir = $t->prefix();
my $map = 1024 * 1024;

$t->init_db('--map-size', '1M');

# the keys: some made by gen (the checksum shape), the others imported

my (%key, @csv);

for my $n (1 .. 5) {
    $key{"V$n"} = $t->gen('--id', "V$n");
}

for my $c (qw(V R O N E)) {
    my $count = { V => 10, R => 60, O => 20, N => 80, E => 5 }->{$c};
    my $from = $c eq 'V' ? 6 : 1;

    for my $n ($from .. $from + $count - 1) {
        $key{"$c$n"} = "load-$c$n-" . word();
    }
}

my $csv = "id,key,expires\n";

for my $id (sort keys %key) {
    next if $id =~ /^V[1-5]$/ || $id =~ /^N/;
    $csv .= "$id,$key{$id}," . ($id =~ /^E/ ? '2020-01-01T00:00:00Z' : '')
            . "\n";
}

$t->ctl_ok({ input => $csv }, 'import', '-');

# unknown keys: of the gen shape, from another database, and not

my @unknown = unknown_keys($t, 5, 'load');

# malformed: a wrong checksum, too short, spaces

my @malformed = malformed_keys($key{V1}, $key{V2}, 5);

# the backup restored again and again; the status of each key in it

$t->ctl_ok('backup', "$dir/backup");

my %backup = map { $_ => ($_ =~ /^[VRO]/ ? 200 : 401) }
             grep { !/^N/ } keys %key;

$t->write_config(<<"EOF", workers => 2, access_log => 1);
    log_format load '\$status \$apikey_status';
    access_log %%PREFIX%%/logs/access.log load;

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

my $load = Apikey::Load->new(port => $t->port(0), dir => "$dir/load",
                             clients => 3);

my %class = (V => 'valid', R => 'revoked', O => 'rotated', N => 'added',
             E => 'expired');

for my $id (sort keys %key) {
    my ($c) = $id =~ /^(.)/;
    $load->key($id, $key{$id}, $class{$c}, $backup{$id} // 401);
}

$load->key_list('U', 'unknown', 401, @unknown);
$load->key_list('M', 'malformed', 401, @malformed);

$load->start();
$load->wait_requests(500);

# the writer loops, each in a process of its own; each command's result
# in writers.<name>: "ok" or "failed: exit N: stderr"

my $w = Apikey::Writers->new($t);

# import: 2 keys the clients send and 1500 others a batch, each batch
# growing the map

my $fill = 0;

$w->writer('import', sub {
    my ($n, $shared, $ctl) = @_;

    return 0 if $n > 40;

    my @ids = ("N" . (2 * $n - 1), "N" . (2 * $n));
    my $in = "id,key\n" . join('', map { "$_,$key{$_}\n" } @ids);

    $in .= join('', map { "F$n-$_,fill-$n-$_-" . word() . "\n" } 1 .. 1500);

    $shared->(sub {
        $load->change({ map { $_ => 200 } @ids },
                      sub { $ctl->({ input => $in }, 'import', '-') },
                      name => 'import');
    });

    sleep 0.1;
    return 1;
});

# revoke: one key at a time; from its return on, 401

$w->writer('revoke', sub {
    my ($n, $shared, $ctl) = @_;

    return 0 if $n > 60;

    $shared->(sub {
        $load->change({ "R$n" => 401 }, sub { $ctl->('revoke', "R$n") },
                      name => 'revoke');
    });

    sleep 0.1;
    return 1;
});

# rotate with a grace of a second: the new key valid from the return,
# the old one until the grace ends, within a second of the rotate's
# start and return plus the grace (the expiry is in whole seconds, and
# nginx's time is cached per event loop); no restore until then

$w->writer('rotate', sub {
    my ($n, $shared, $ctl) = @_;

    return 0 if $n > 20;

    $shared->(sub { Apikey::Writers::rotate($load, $ctl, "O$n") });

    sleep 0.2;
    return 1;
});

# restore: the backup of the start, alone; every key back to its status
# in the backup, the others unknown

$w->restorer($load, \%backup, "$dir/backup");

# about ten seconds of it

my $end = time() + scaled(10);
my $grown;

while (time() < $end) {
    sleep 0.5;

    my $stats = $t->ctl_ok('stats', '--format', 'json');
    $grown //= $1 if $stats =~ /"map_size":(\d+)/ && $1 > $map;
}

$w->stop();

$load->wait_requests(500);
$load->stop();

# every command succeeded, each loop ran

my %done;

for my $name (qw(import revoke rotate restore)) {
    my @lines = $w->results($name);

    my @failed = grep { !/^ok$/ } @lines;

    $done{$name} = @lines;

    cmp_ok(scalar @lines, '>', 0, "$name: some under load");
    is(scalar @failed, 0, "$name: each one succeeded")
        or diag(join('', @failed[0 .. ($#failed < 4 ? $#failed : 4)]));
}

my $stats = $t->ctl_ok('stats', '--format', 'json');
my ($size) = $stats =~ /"map_size":(\d+)/;

ok($grown && $size > $map, 'map grown under load')
    or diag($stats);

diag(join(', ', map { "$done{$_} ${_}s" } sort keys %done)
     . "; map size $map, then $size");

# no worker exits: no keep-alive connection closed without a word

my $s = $load->ok(name => 'concurrent writers', min => 1000, retried => 0);

# the load covered the changes

my $c = $s->{classes};

ok($c->{'revoked 401'} && $c->{'added 200'} && $c->{'rotated_new 200'}
   && $c->{'rotated 401'}, 'revoked, added and rotated keys seen changed')
    or diag(join(', ', map { "$_: $c->{$_}" } sort keys %$c));

$t->stop();

# the answers the clients counted are the ones nginx logged

my %logged;

open my $al, '<', "$dir/logs/access.log" or die "access.log: $!";
while (<$al>) {
    my ($status) = split;
    $logged{$status}++;
}
close $al;

is(join(', ', map { "$_: $logged{$_}" } sort keys %logged),
   join(', ', map { "$_: $s->{status}{$_}" } sort keys %{$s->{status}}),
   'the answers counted are the ones nginx logged');

$t->check_log();

done_testing();
