#!/usr/bin/perl

# Tests reloads and a binary upgrade while nginx serves under load, with
# eight workers (issue 9): "nginx -s reload" fifty times in a row, each
# waiting for the eight new workers, while a writer adds and revokes
# keys; then the upgrade as an operator does it: USR2 to the master (a
# new master starts from the same binary, with workers of its own, both
# generations answering), QUIT to the old one (its pid from
# nginx.pid.oldbin).  Every answer is the one of its key at that moment,
# no request is lost, no 5xx; afterwards each live worker holds exactly
# one reader slot (apikeyctl stats, and the pids of the lock file's
# slots), none is left by the hundreds of workers gone, and the
# database is clean.
#
# nginx runs as a daemon here, as in production: a master started with
# "daemon off" by a process that stays its parent ignores USR2 ("the
# changing binary signal is ignored").  The test makes itself a child
# subreaper, so that the daemon, and the new master once the old one
# has gone, are its children to wait for.
#
# A keep-alive connection that an exiting worker closes between two
# requests is sent again on a new connection (the load counts it as
# retried): about one a client for each reload and for the upgrade
# (measured: 172 for 50 reloads and 4 clients); twice that is allowed,
# as the new connection may reach an old worker that has not yet had
# its QUIT.  A request lost, its connection closed after it was sent,
# fails the test.

use strict;
use warnings;

use Test::More;

use POSIX qw(WNOHANG);
use Time::HiRes qw(sleep time);

use Apikey::Harness qw(scaled);
use Apikey::Load qw(word unknown_keys malformed_keys);
use Apikey::Writers;

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'Linux only (/proc, prctl)') unless $^O eq 'linux';
plan(skip_all => 'not under valgrind: 8 workers and 50 reloads')
    if $ENV{TEST_NGINX_VALGRIND};

# PR_SET_CHILD_SUBREAPER (36)

my $sys_prctl = eval { require 'syscall.ph'; &SYS_prctl() } // 157;

syscall($sys_prctl, 36, 1, 0, 0, 0) == 0
    or plan(skip_all => "prctl(PR_SET_CHILD_SUBREAPER) failed: $!");

my $dir = $t->prefix();
my $workers = 8;
my $reloads = 50;
my $clients = 4;
my $revokes = 400;

$t->init_db();

# valid keys made by gen; keys to revoke and expired keys imported

my %key;

$key{"V$_"} = $t->gen('--id', "V$_") for 1 .. 5;
$key{"R$_"} = "reload-R$_-" . word() for 1 .. $revokes;
$key{"E$_"} = "reload-E$_-" . word() for 1 .. 5;

$t->ctl_ok({ input => "id,key,expires\n"
                      . join('', map { "R$_,$key{\"R$_\"},\n" }
                                 1 .. $revokes)
                      . join('', map { "E$_,$key{\"E$_\"},"
                                       . "2020-01-01T00:00:00Z\n" } 1 .. 5) },
           'import', '-');

# unknown keys: from another database, and not of the gen shape

my @unknown = unknown_keys($t, 3, 'reload');

# malformed: a wrong checksum, too short, spaces

my @malformed = malformed_keys($key{V1}, $key{V2}, 4);

# reuseport: a listening socket a worker, so that each takes connections
# (and every worker can be reached for the slot count at the end)

$t->write_config(<<"EOF", workers => $workers);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;

        location / {
            apikey on;
            add_header X-Worker \$pid always;
            empty_gif;
        }
    }
EOF

my $conf = "$dir/nginx.conf";
my $text = Apikey::Harness::slurp($conf);
$text =~ s/^daemon off;$/daemon on;/m or die 'no "daemon off" in the config';
open my $fh, '>', $conf or die "$conf: $!";
print $fh $text;
close $fh;

my @nginx = ($t->{nginx}, '-p', "$dir/", '-e', "$dir/logs/error.log",
             '-c', $conf);

sub run {
    my (@cmd) = @_;

    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$dir/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }

    waitpid($pid, 0);
    return $? >> 8;
}

sub pid_file {
    my ($file) = @_;
    my ($pid) = Apikey::Harness::slurp("$dir/$file") =~ /^(\d+)/;
    return $pid;
}

# wait until the master has $n workers that are not in @$old

sub new_workers {
    my ($master, $n, $old) = @_;

    my %old = map { $_ => 1 } @$old;
    my $end = time() + scaled(20);
    my @new;

    while (time() < $end) {
        @new = grep { !$old{$_} } $t->workers($master);
        last if @new >= $n;
        sleep 0.02;
    }

    return @new;
}

# wait until the master has exactly the workers @$want

sub only_workers {
    my ($master, $want) = @_;

    my $end = time() + scaled(20);
    my $w = join(' ', sort { $a <=> $b } @$want);
    my $now;

    while (time() < $end) {
        $now = join(' ', $t->workers($master));
        return 1 if $now eq $w;
        sleep 0.05;
    }

    diag("workers of $master: $now, wanted $w");
    return 0;
}

# a master the harness does not know of, if the test stops half-way

END {
    for my $f ('nginx.pid', 'nginx.pid.oldbin') {
        my $pid = pid_file($f) or next;
        next if $t->{pid} && $pid == $t->{pid};

        kill 'TERM', $pid
            if Apikey::Harness::slurp("/proc/$pid/cmdline") =~ /nginx/;
    }
}

is(run(@nginx), 0, 'nginx started as a daemon');

my $end = time() + scaled(10);
sleep 0.05 while !pid_file('nginx.pid') && time() < $end;

my $master = pid_file('nginx.pid');
ok($master, 'pid file written') or BAIL_OUT('no master');

# the harness stops it at the end: it is our child now (subreaper)

$t->{pid} = $master;

my @gen = new_workers($master, $workers, []);
is(scalar @gen, $workers, "$workers workers");

my $load = Apikey::Load->new(port => $t->port(0), dir => "$dir/load",
                             clients => $clients);

$load->key($_, $key{$_}, 'valid', 200) for map { "V$_" } 1 .. 5;
$load->key($_, $key{$_}, 'revoked', 200) for map { "R$_" } 1 .. $revokes;
$load->key($_, $key{$_}, 'expired', 401) for map { "E$_" } 1 .. 5;
$load->key_list('U', 'unknown', 401, @unknown);
$load->key_list('M', 'malformed', 401, @malformed);

$load->start();
$load->wait_requests(300);

my $started = time();
my $before = $load->requests();

# the writer: a key made and a key revoked each turn, until told to
# stop; each command's result in writers.gen-revoke

my $w = Apikey::Writers->new($t);

$w->writer('gen-revoke', sub {
    my ($n, $shared, $ctl) = @_;

    return 0 if $n > $revokes;

    my ($rc, $out) = $ctl->('gen', '--id', "G$n");

    if ($rc == 0) {
        chomp $out;
        $load->key("G$n", $out, 'added', 200);
    }

    $load->change({ "R$n" => 401 }, sub { $ctl->('revoke', "R$n") },
                  name => 'revoke');

    sleep 0.03;
    return 1;
});

# fifty reloads in a row: "nginx -s reload", then the eight new workers

my ($signalled, $generations) = (0, 0);
my @all = @gen;

for my $n (1 .. $reloads) {
    $signalled++ if run(@nginx, '-s', 'reload') == 0;

    my @new = new_workers($master, $workers, \@all);
    last if @new < $workers;

    $generations++;
    push @all, @new;
    @gen = @new;
}

is($signalled, $reloads, "nginx -s reload $reloads times");
is($generations, $reloads, "$workers new workers after each reload");

my $reloaded = time();

ok(only_workers($master, \@gen), 'the old workers gone');

$load->wait_requests(300);

my $after_reloads = $load->requests();

# the binary upgrade: USR2, a new master with workers of its own

kill 'USR2', $master;

$end = time() + scaled(20);
my $new_master;

while (time() < $end) {
    my $pid = pid_file('nginx.pid');
    $new_master = $pid if $pid && $pid != $master
                          && -e "$dir/nginx.pid.oldbin";
    last if $new_master;
    sleep 0.05;
}

ok($new_master, 'new master started, its pid in nginx.pid')
    or BAIL_OUT('no new master');
is(pid_file('nginx.pid.oldbin'), $master, 'old pid in nginx.pid.oldbin');

my @upgraded = new_workers($new_master, $workers, []);
is(scalar @upgraded, $workers, "$workers workers of the new master");
is(join(' ', grep { $_ != $new_master } $t->workers($master)),
   join(' ', @gen), 'the old workers still there');

# both generations serve for a while, then QUIT to the old master (its
# pid from nginx.pid.oldbin, as an operator finds it)

$load->wait_requests(300);

kill 'QUIT', pid_file('nginx.pid.oldbin');

$end = time() + scaled(20);
my $gone;

while (time() < $end) {
    $gone = 1, last if waitpid($master, WNOHANG) == $master;
    sleep 0.05;
}

ok($gone, 'old master exited');
is($? >> 8, 0, 'old master exit code 0') if $gone;
ok(!-e "$dir/nginx.pid.oldbin", 'nginx.pid.oldbin removed');

$t->{pid} = $new_master;

ok(only_workers($new_master, \@upgraded), 'only the new workers left');

# some more requests, all answered by the new generation

$load->wait_requests(500);

$w->stop();

$load->stop();

my $done = time();

my @failed = grep { !/^ok$/ } $w->results('gen-revoke');
my $writes = grep { /^ok$/ } $w->results('gen-revoke');

is(join('', @failed), '', 'every gen and revoke succeeded');
cmp_ok($writes, '>=', 20, 'the writer ran');

my $s = $load->ok(name => 'reloads and upgrade', min => 1000,
                  retried => 2 * $clients * ($reloads + 1));

cmp_ok($s->{classes}{'revoked 401'} // 0, '>', 0, 'revoked keys seen 401');
cmp_ok($s->{classes}{'added 200'} // 0, '>', 0, 'added keys seen 200');

diag(sprintf('%d requests during %d reloads (%.1f s), %d during the'
             . ' upgrade (%.1f s); %d writes; %d workers started',
             $after_reloads - $before, $reloads, $reloaded - $started,
             $s->{requests} - $after_reloads, $done - $reloaded,
             $writes, scalar(@all) + $workers));

# a reader slot for each live worker, none left by the hundreds gone,
# none held by a master: a worker takes its slot on its first request,
# so every worker is reached first (a new connection each, reuseport
# spreads them)

sub every_worker {
    my %seen;

    for (1 .. 800) {
        my $r = $t->get('/', 'X-API-Key' => $key{V1});
        $seen{$r->{headers}{'x-worker'}[0] // ''} = 1;
        last if keys %seen >= $workers;
    }

    delete $seen{''};

    return sort { $a <=> $b } keys %seen;
}

is(join(' ', every_worker()), join(' ', @upgraded),
   'every new worker answers');

my $stats = $t->ctl_ok('stats', '--format', 'json');
my ($used) = $stats =~ /"readers_used":(\d+)/;

is($used, $workers, 'apikeyctl stats: a reader slot a live worker')
    or diag($stats);

# the pids of the slots, as LMDB's own tool lists them

SKIP: {
    my $out = `mdb_stat -r $dir/db 2>&1`;
    skip 'mdb_stat not installed (lmdb-utils)', 1
        if $? == -1 || $? >> 8 == 127;

    my %pids;
    $pids{$1} = 1 while $out =~ /^\s*(\d+)\s+[0-9a-f]+\s+(?:\d+|-)\s*$/mg;

    is(join(' ', sort { $a <=> $b } keys %pids), join(' ', @upgraded),
       'the slots are held by the live workers, no other')
        or diag($out);
}

my ($rc, $out, $err) = $t->ctl('check');
is($rc, 0, 'apikeyctl check after the reloads') or diag("$out$err");

$t->stop();

ok(!kill(0, $new_master), 'new master stopped');

# the error log: no alert, no crash, no signal ignored

my $log = $t->error_log();

is(() = $log =~ /signal 1 \(SIGHUP\) received/g, $reloads,
   'each reload received');
is(join("\n", $log =~ /^.*(?:\[crit\]|\[alert\]|\[emerg\]).*$/mg), '',
   'no crit, alert or emerg in error log');
is(join("\n", $log =~ /^.*(?:exited\ on\ signal|Sanitizer|core\ dumped)
                       .*$/mgx), '', 'no crash in error log');

done_testing();
