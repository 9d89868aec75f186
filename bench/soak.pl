#!/usr/bin/perl
#
# The soak (make soak DURATION=10m): a real nginx with the module and
# 2 workers on a database made by apikeyctl, the load of Apikey::Load
# (t/lib) that knows the right answer, and every writer loop at once
# for DURATION:
#
#   import   a key the clients send and 500 others a batch; the 500
#            of two batches before revoked (removed)
#   revoke   the prober: a new key imported, sent once (200), revoked,
#            then sent again and again on a keep-alive connection until
#            it is rejected: the revocation latency, from "apikeyctl
#            revoke" returning to the first 401 received
#   rotate   a new key imported, then rotated with a grace of 1 s
#   restore  the backup made at the start, alone (the others wait)
#
# Every DURATION/300 s (0.5 to 2 s) the workers' RSS (/proc/PID/status)
# and the database (data.mdb bytes, map used from "apikeyctl stats
# --format json") are sampled.  At the end: the requests served, the
# wrong decisions, the unexpected 5xx, the revocation latency
# percentiles, RSS and database size after the warm-up and at the end,
# whether they stayed flat, and with --out the table (soak.md), the
# samples (soak.tsv) and a chart of them (soak.png, bench/soak.gp).
#
# Flat: the highest value of the last window (10% of the run) is within
# 10% of the highest value of the window right after the warm-up (10%
# of the run, 8 to 60 s), or within a few MB of it: 4 MB for the RSS
# and the database, 1 MB for the anonymous part of the RSS (the heap:
# the rest is data.mdb's pages, mapped).  data.mdb and map used are
# the high-water mark of the pages written: a reader's snapshot keeps
# the pages freed after it from being reused until it ends, so a worker
# a moment late under a burst of writes raises the mark; pages in use
# (mdb_stat: free pages left out) are the keys themselves.
#
# usage: soak.pl [--duration 10m] [--workers 2] [--clients 3]
#                [--build DIR] [--nginx BIN] [--out DIR] [--no-chart]
#                [--p99-limit MS (10; 0: none)] [--nice N (10)]
#                [--prober-nice N (-5)]
#
# The clients run at nice 10: on a small machine they would otherwise
# take the CPUs from nginx and the prober; the prober at nice -5 when
# allowed (root), else at 0, as the report says.
#
# Exit code 0 if there was no wrong decision, no unexpected 5xx, no
# dropped connection, no failed command, no alert or crash in the
# error log, revocation p99 under the limit and RSS and database flat;
# 1 otherwise; 2 if the soak could not run.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Cwd qw(abs_path);
use Getopt::Long;
use IO::Socket::INET;
use POSIX qw();
use Socket qw(IPPROTO_TCP TCP_NODELAY);
use Time::HiRes qw(sleep time);

my $root = abs_path("$FindBin::Bin/..");

my %o = (duration => '10m', workers => 2, clients => 3,
         build => "$root/build", nginx => '/usr/sbin/nginx',
         'p99-limit' => 10, nice => 10, 'prober-nice' => -5);

GetOptions(\%o, 'duration=s', 'workers=i', 'clients=i', 'build=s',
           'nginx=s', 'out=s', 'no-chart', 'p99-limit=f', 'nice=i',
           'prober-nice=i')
    or die "usage: see the header of $0\n";

my $duration = seconds($o{duration});

die "soak: --duration \"$o{duration}\": a number and s, m or h\n"
    unless defined $duration && $duration >= 10;
die "soak: --workers 1 to 16\n" if $o{workers} < 1 || $o{workers} > 16;

$ENV{APIKEY_BUILD} = abs_path($o{build}) // $o{build};
$ENV{TEST_NGINX_BINARY} = $o{nginx};

require Apikey::Harness;
require Apikey::Load;
Apikey::Load->import('word', 'unknown_keys', 'malformed_keys');
require Apikey::Writers;

# the harness is made for tests: no test ends here, the exit code is ours

Test::More->builder->no_ending(1);

sub seconds {
    my ($d) = @_;

    my ($n, $unit) = $d =~ /^(\d+(?:\.\d+)?)(s|m|h)?$/ or return undef;

    return $n * { s => 1, m => 60, h => 3600 }->{$unit // 's'};
}

my $t = Apikey::Harness->new();

for ([$t->{nginx}, '-x'], [$t->{module}, '-f'], [$t->{apikeyctl}, '-x']) {
    my ($f, $test) = @$_;
    my $ok = $test eq '-x' ? -x $f : -f $f;
    die "soak: $f: not found (make B=... first)\n" unless $ok;
}

my $dir = $t->prefix();

# the run's phases: warm-up, then the windows compared

my $interval = $duration / 300;
$interval = 0.5 if $interval < 0.5;
$interval = 2 if $interval > 2;

my $warmup = $duration / 10;
$warmup = 8 if $warmup < 8;
$warmup = 60 if $warmup > 60;

my $window = $duration / 10;
$window = 3 * $interval if $window < 3 * $interval;


# the database and the keys: made with apikeyctl, a map of 2 MB (the
# soak's keys stay under it: a map grown under load is the subject of
# t/apikey_load_writers.t)

$t->init_db('--map-size', '2M');

my %key;

$key{"V$_"} = $t->gen('--id', "V$_") for 1 .. 5;
$key{"V$_"} = "soak-V$_-" . word() for 6 .. 15;
$key{"E$_"} = "soak-E$_-" . word() for 1 .. 5;

my $csv = "id,key,expires\n";

for my $id (sort keys %key) {
    next if $id =~ /^V[1-5]$/;
    $csv .= "$id,$key{$id}," . ($id =~ /^E/ ? '2020-01-01T00:00:00Z' : '')
            . "\n";
}

$t->ctl_ok({ input => $csv }, 'import', '-');

my @unknown = unknown_keys($t, 5, 'soak');

my @malformed = malformed_keys($key{V1}, $key{V2}, 5);

# the backup that restore brings back, again and again

$t->ctl_ok('backup', "$dir/backup");

my %backup = map { $_ => (/^V/ ? 200 : 401) } keys %key;

# reuseport: a listening socket per worker, the connections spread over
# them (with one shared socket, EPOLLEXCLUSIVE hands most of them to
# one worker, and the other sits idle with the snapshot of its last
# request, up to two ticks of its timer)

$t->write_config(<<"EOF", workers => $o{workers});
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;

        location / {
            apikey on;
            empty_gif;
        }
    }
EOF

$t->start();

my $port = $t->port(0);
my $load = Apikey::Load->new(port => $port, dir => "$dir/load",
                             clients => $o{clients},
                             seconds => $duration + 600);

# the valid keys weigh more: the keys the writers add end revoked or
# removed, and they are many after an hour

$load->key($_, $key{$_}, 'valid', 200, weight => 50)
    for grep { /^V/ } sort keys %key;
$load->key($_, $key{$_}, 'expired', 401) for grep { /^E/ } sort keys %key;
$load->key_list('U', 'unknown', 401, @unknown);
$load->key_list('M', 'malformed', 401, @malformed);

my $t0 = time();
my $loadavg = (split / /, Apikey::Harness::slurp('/proc/loadavg'))[0];

$load->start();

# the clients at a lower priority (--nice): they would keep both CPUs
# of a small machine busy, and the prober's request would wait for the
# scheduler rather than for nginx

setpriority(0, $_, $o{nice}) for @{$load->{pids}};

$load->wait_requests(200);


# the writer loops, each in a process of its own; each command's result
# in writers.<name>: "ok" or "failed: ..."; the prober's in probes

my $w = Apikey::Writers->new($t);

# import: a key the clients send and 500 others, and the 500 of two
# batches before revoked (removed), whatever the restores did meanwhile:
# the keys the database holds stay within bounds

$w->writer('import', sub {
    my ($n, $shared, $ctl) = @_;

    my $id = "N$n";
    my $k = "soak-N$n-" . word();
    my $in = "id,key\n$id,$k\n"
             . join('', map { "F$n-$_,fill-$n-$_-" . word() . "\n" }
                        1 .. 500);
    my $old = $n > 2 ? join('', map { "F" . ($n - 2) . "-$_\n" } 1 .. 500)
                     : '';

    $load->key($id, $k, 'added', 401);

    $shared->(sub {
        $load->change({ $id => 200 },
                      sub { $ctl->({ input => $in }, 'import', '-') },
                      name => 'import');

        $ctl->({ input => $old }, 'revoke', '--ignore-missing', '-')
            if $old;
    });

    sleep 0.2;
    return 1;
});

# revoke, and the prober: one line a revoke in probes, "n latency_ms
# accepted_after_revoke last_status revoke_ms", or "wrong ..." for an
# answer that was not the key's

my ($probe_s, $probe_buf);

sub probe {
    my ($key) = @_;

    my $req = "GET / HTTP/1.1\r\nHost: localhost\r\nX-API-Key: $key\r\n\r\n";

    for my $try (1, 2) {
        my $reused = defined $probe_s;

        if (!$probe_s) {
            $probe_s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                             PeerPort => $port,
                                             Proto => 'tcp')
                or return 0;
            setsockopt($probe_s, IPPROTO_TCP, TCP_NODELAY, 1);
            $probe_buf = '';
        }

        my ($status, $close) = $load->exchange($probe_s, $req, \$probe_buf);

        if ($status == 0 || $close) {
            close $probe_s;
            undef $probe_s;
            next if $status == 0 && $close eq 'before' && $reused;
        }

        return $status;
    }

    return 0;
}

$w->writer('revoke', sub {
    my ($n, $shared, $ctl) = @_;

    # the prober before the others, when allowed (root): its own wait
    # for a CPU is no part of the latency measured

    if ($n == 1 && !setpriority(0, 0, $o{'prober-nice'})) {
        open my $fh, '>', "$dir/prober.nice" or die "prober.nice: $!";
        print $fh "$!\n";
        close $fh;
    }

    my $id = "P$n";
    my $k = "soak-P$n-" . word();

    open my $log, '>>', "$dir/probes" or die "probes: $!";
    $log->autoflush(1);

    $shared->(sub {
        my ($rc) = $ctl->({ input => "id,key\n$id,$k\n" }, 'import', '-');
        return if $rc != 0;

        my $status = probe($k);

        if ($status != 200) {
            print $log "wrong $id before revoke $status\n";
            return;
        }

        my $start = time();
        ($rc) = $ctl->('revoke', $id);
        my $end = time();

        return if $rc != 0;

        my $accepted = 0;

        while (1) {
            $status = probe($k);
            last if $status != 200 || time() > $end + 10;
            $accepted++;
        }

        my $latency = time() - $end;

        print $log "wrong $id after revoke $status\n"
            if $status != 401 || $accepted;

        printf $log "%d %.3f %d %d %.3f\n", $n, $latency * 1000, $accepted,
                    $status, ($end - $start) * 1000;
    });

    close $log;

    sleep 0.05;
    return 1;
});

# rotate: a new key, rotated with a grace of a second; the new one valid
# from the return, the old one until the grace ends (within a second of
# the expiry: whole seconds, and nginx's time is cached per event loop);
# no restore until then

$w->writer('rotate', sub {
    my ($n, $shared, $ctl) = @_;

    my $id = "O$n";
    my $k = "soak-O$n-" . word();

    $load->key($id, $k, 'rotated', 401);

    $shared->(sub {
        my ($rc) = $load->change({ $id => 200 },
                                 sub { $ctl->({ input => "id,key\n$id,$k\n" },
                                              'import', '-') },
                                 name => 'import');
        Apikey::Writers::rotate($load, $ctl, $id) if $rc == 0;
    });

    sleep 0.2;
    return 1;
});

# restore: the backup of the start, alone; every key back to its status
# in the backup, the others unknown

$w->restorer($load, \%backup, "$dir/backup");


# the samples, until the end

sub rss {
    my ($pid) = @_;

    my $status = Apikey::Harness::slurp("/proc/$pid/status");
    my ($rss) = $status =~ /^VmRSS:\s+(\d+) kB/m;
    my ($anon) = $status =~ /^RssAnon:\s+(\d+) kB/m;

    return ($rss // 0, $anon // 0);
}

# from mdb_stat, if there: the pages in use, those on the free list
# left out (the keys the database holds, under the high-water mark that
# data.mdb and map used show), and how many commits the reader furthest
# behind is behind the last one, with its pid (the pages freed since its
# snapshot cannot be reused while it lasts)

my $mdb_stat = (grep { -x "$_/mdb_stat" } split /:/, $ENV{PATH})[0];

sub live {
    return (live => undef) unless $mdb_stat;

    my $out = `$mdb_stat/mdb_stat -efr '@{[ $t->db() ]}' 2>/dev/null`;

    my ($psize) = $out =~ /Page size: (\d+)/;
    my ($used) = $out =~ /Number of pages used: (\d+)/;
    my ($free) = $out =~ /Free pages: (\d+)/;
    my ($txn) = $out =~ /Last transaction ID: (\d+)/;

    return (live => undef) unless $psize && defined $used && defined $free;

    my %r = (live => ($used - $free) * $psize, lag => 0);
    my @readers = $out =~ /^\s+(\d+)\s+[0-9a-f]+\s+(\d+)\s*$/mg;

    while (my ($pid, $id) = splice(@readers, 0, 2)) {
        @r{qw(lag lagpid)} = ($txn - $id, $pid) if $txn - $id > $r{lag};
    }

    return %r;
}

my @samples;
my $end = $t0 + $duration;
my $next = $t0;

while ((my $now = time()) < $end) {
    if ($now < $next) {
        sleep($next - $now);
        next;
    }

    $next += $interval;

    my (@rss, $anon);
    my @pids = $t->workers();

    for my $pid (@pids) {
        my ($r, $a) = rss($pid);
        push @rss, $r;
        $anon += $a;
    }

    my ($rc, $stats) = $t->ctl('stats', '--format', 'json');
    my %st = $stats =~ /"(map_used|map_size|readers_used|keys)":(\d+)/g;

    push @samples, { t => time() - $t0, rss => \@rss, anon => $anon // 0,
                     pids => \@pids,
                     mdb => -s ($t->db() . '/data.mdb'), live(), %st };
}

my $stopped = time();
my $loadavg_end = (split / /, Apikey::Harness::slurp('/proc/loadavg'))[0];

$w->stop();

$load->stop();

my $served = time() - $t0;

$t->stop();

# the database whole after all that; the harness's own check at the end
# is for tests

my ($check_rc, undef, $check_err) = $t->ctl('check');

$t->no_check($_) for $t->db(), "$dir/other", "$dir/backup";


# the answers

my $s = $load->check();

my %writes;
my @failed;

for my $name (qw(import revoke rotate restore)) {
    for ($w->results($name)) {
        $writes{$name}++;
        push @failed, "$name: $_" unless /^ok$/;
    }
}

my (@latency, @wrong_probes, $probe_requests, $first_rejected);

if (open my $log, '<', "$dir/probes") {
    while (<$log>) {
        if (/^wrong/) {
            push @wrong_probes, $_;
            next;
        }

        my ($n, $ms, $accepted) = split;
        push @latency, $ms;
        $probe_requests += 2 + $accepted;
        $first_rejected++ unless $accepted;
    }

    close $log;
}

@latency = sort { $a <=> $b } @latency;

sub pct {
    my ($p) = @_;

    return undef unless @latency;

    my $i = POSIX::ceil($p / 100 * @latency) - 1;
    $i = 0 if $i < 0;

    return $latency[$i];
}

my %lat = map { $_ => pct($_) } 50, 90, 99, 100;

my $wrong = $s->{wrong} + grep { !/ [5]\d\d$/ } @wrong_probes;
my $five = $s->{unexpected_5xx} + grep { / [5]\d\d$/ } @wrong_probes;

# the request rate, by sample

my @rate = (0) x @samples;

for my $n (1 .. $o{clients}) {
    open my $log, '<', "$dir/load/client.$n" or next;

    while (<$log>) {
        my (undef, $got) = split / /, $_, 3;
        my $i = int(($got - $t0) / $interval);
        $rate[$i]++ if $i >= 0 && $i < @rate;
    }

    close $log;
}

$_ /= $interval for @rate;

# after the warm-up and at the end

sub peak {
    my ($from, $to, $get) = @_;

    my $max;

    for my $x (grep { $_->{t} >= $from && $_->{t} <= $to } @samples) {
        my $v = $get->($x);
        $max = $v if !defined $max || $v > $max;
    }

    return $max // 0;
}

my @metrics = (
    [ 'worker RSS (sum)', 4 << 20,
      sub { my $sum = 0; $sum += $_ for @{$_[0]{rss}}; $sum * 1024 } ],
    [ 'worker RSS anon (sum)', 1 << 20, sub { $_[0]{anon} * 1024 } ],
    [ 'data.mdb', 4 << 20, sub { $_[0]{mdb} // 0 } ],
    [ 'map used', 4 << 20, sub { $_[0]{map_used} // 0 } ],
);

my (@flat_rows, $flat);

$flat = 1;

for my $m (@metrics) {
    my ($name, $slack, $get) = @$m;

    my $ref = peak($warmup, $warmup + $window, $get);
    my $last = peak($samples[-1]{t} - $window, $samples[-1]{t}, $get);
    my $ok = $last <= $ref * 1.10 || $last - $ref <= $slack;

    $flat = 0 unless $ok;

    push @flat_rows, [ $name, $ref, $last, $ok, $slack ];
}

# the samples that found a reader 3 commits or more behind the last, by
# whom: the workers (their pids when sampled) or another process

sub reader_lag {
    return 'no mdb_stat' unless $mdb_stat;

    my ($n, $worst, %by) = (0, 0);

    for my $x (@samples) {
        next unless ($x->{lag} // 0) >= 3;

        $n++;
        $worst = $x->{lag} if $x->{lag} > $worst;
        $by{(grep { $_ == $x->{lagpid} } @{$x->{pids}}) ? 'a worker'
                                                         : 'another'}++;
    }

    return sprintf('%d of %d samples found a reader 3 commits or more'
                   . ' behind (%s), at most %d', $n, scalar @samples,
                   join(', ', map { "$_ $by{$_}" } sort keys %by) || '-',
                   $worst);
}

# each worker's RSS, after the warm-up and at the end (the sample nearest)

sub at {
    my ($t) = @_;
    my ($x) = sort { abs($a->{t} - $t) <=> abs($b->{t} - $t) } @samples;
    return $x;
}

my ($first, $last) = (at($warmup), $samples[-1]);

my @alerts = grep { /\[(?:alert|emerg)\]|exited on signal|core dumped/ }
             split /\n/, $t->error_log();
my @errors = grep { /\[(?:error|crit)\]/ } split /\n/, $t->error_log();

my $nginx_v = `$t->{nginx} -v 2>&1`;
$nginx_v =~ s/^nginx version: //;
chomp $nginx_v;


# the report

sub mb {
    my ($b) = @_;
    return sprintf('%.1f MB', $b / (1 << 20));
}

sub ms {
    my ($v) = @_;
    return defined $v ? sprintf('%.2f ms', $v) : '-';
}

my @fail;

push @fail, "wrong decisions" if $wrong;
push @fail, "unexpected 5xx" if $five;
push @fail, "dropped connections" if $s->{dropped};
push @fail, "failed commands" if @failed;
push @fail, "a client failed" if $s->{failed_clients};
push @fail, "alerts in the error log" if @alerts;
push @fail, "apikeyctl check failed" if $check_rc != 0;
push @fail, "no revocation measured" unless @latency;
push @fail, "revocation p99 not under $o{'p99-limit'} ms"
    if $o{'p99-limit'} && @latency && $lat{99} >= $o{'p99-limit'};
push @fail, "not flat" unless $flat;

my @rows = (
    [ 'duration', sprintf('%s (%.0f s served; warm-up %.0f s, windows'
                          . ' %.0f s, a sample every %.1f s)',
                          $o{duration}, $served, $warmup, $window,
                          $interval) ],
    [ 'nginx', "$nginx_v, $o{workers} workers, $o{clients} clients"
               . " (nice $o{nice}), the prober at nice "
               . (-e "$dir/prober.nice"
                  ? '0 (' . $o{'prober-nice'} . ' not allowed)'
                  : $o{'prober-nice'}) ],
    [ 'load average', "$loadavg at the start, $loadavg_end at the end" ],
    [ 'requests served', sprintf('%d (%.0f/s), and %d by the prober',
                                 $s->{requests}, $s->{requests} / $served,
                                 $probe_requests // 0) ],
    [ 'wrong decisions', $wrong ],
    [ 'unexpected 5xx', $five ],
    [ 'dropped', $s->{dropped} ],
    [ 'retried', $s->{retried} ],
    [ 'answers', join(', ', map { "$_: $s->{status}{$_}" }
                            sort keys %{$s->{status}}) ],
    [ 'writers', join(', ', map { "$_ " . ($writes{$_} // 0) }
                            qw(import revoke rotate restore))
                 . sprintf(' commands (by loop); %d failed',
                           scalar @failed) ],
    [ 'revocations probed', sprintf('%d, the first request after the'
                                    . ' revoke rejected in %d',
                                    scalar @latency, $first_rejected // 0) ],
    [ 'revocation latency', sprintf('p50 %s, p90 %s, p99 %s, max %s',
                                    map { ms($lat{$_}) } 50, 90, 99, 100) ],
    [ 'worker RSS, warmed up', sprintf('%s (%s), anon %s',
                                  mb(1024 * sum(@{$first->{rss}})),
                                  join(' + ', map { mb(1024 * $_) }
                                              @{$first->{rss}}),
                                  mb(1024 * $first->{anon})) ],
    [ 'worker RSS at the end', sprintf('%s (%s), anon %s',
                                mb(1024 * sum(@{$last->{rss}})),
                                join(' + ', map { mb(1024 * $_) }
                                            @{$last->{rss}}),
                                mb(1024 * $last->{anon})) ],
    [ 'data.mdb, warmed up', sprintf('%d bytes, map used %d bytes',
                                     $first->{mdb} // 0,
                                     $first->{map_used} // 0) ],
    [ 'data.mdb at the end', sprintf('%d bytes, map used %d bytes,'
                                     . ' map %d bytes',
                                     $last->{mdb} // 0,
                                     $last->{map_used} // 0,
                                     $last->{map_size} // 0) ],
    [ 'readers behind', reader_lag() ],
    [ 'pages in use', defined $last->{live}
                      ? sprintf('%s after warm-up, %s at the end (%s the'
                                . ' highest; free pages left out)',
                                mb($first->{live} // 0), mb($last->{live}),
                                mb(peak(0, $served, sub { $_[0]{live} // 0
                                                        })))
                      : 'no mdb_stat' ],
    (map {
        my ($name, $ref, $end, $ok, $slack) = @$_;
        [ "growth of $name", sprintf('%s after warm-up, %s at the end'
                                     . ' (%+.1f%%): %s', mb($ref), mb($end),
                                     $ref ? 100 * ($end - $ref) / $ref : 0,
                                     $ok ? 'flat' : 'GROWING') ]
    } @flat_rows),
    [ 'flat', $flat ? 'yes' : 'no' ],
    [ 'alerts', scalar @alerts ],
    [ 'errors logged', scalar @errors ],
    [ 'apikeyctl check', $check_rc == 0 ? 'clean' : "exit $check_rc" ],
    [ 'verdict', @fail ? 'FAIL: ' . join(', ', @fail) : 'PASS' ],
);

sub sum {
    my $sum = 0;
    $sum += $_ for @_;
    return $sum;
}

for my $r (@rows) {
    printf "%-24s %s\n", "$r->[0]:", $r->[1];
}

print "$_\n" for @failed[0 .. ($#failed < 4 ? $#failed : 4)];
print "$_" for @wrong_probes[0 .. ($#wrong_probes < 4 ? $#wrong_probes : 4)];
print "$_\n" for @alerts[0 .. ($#alerts < 4 ? $#alerts : 4)];
print $check_err if $check_rc != 0;
print "$_\n" for @errors[0 .. ($#errors < 4 ? $#errors : 4)];
print "$_\n" for @{$s->{samples}};

if ($o{out}) {
    my $out = $o{out};

    -d $out or mkdir $out or die "soak: $out: $!\n";

    # the samples: seconds, requests/s, RSS sum and anon (MB), data.mdb
    # and map used (MB), readers, keys, then each worker's RSS (MB)

    open my $tsv, '>', "$out/soak.tsv" or die "soak: $out/soak.tsv: $!\n";

    print $tsv "# t\treq_s\trss_mb\tanon_mb\tmdb_mb\tmap_used_mb\treaders"
               . "\tkeys\tlive_mb\tlag"
               . join('', map { "\tw${_}_mb" } 1 .. $o{workers}) . "\n";

    for my $i (0 .. $#samples) {
        my $x = $samples[$i];
        my @w = map { $x->{rss}[$_] // 0 } 0 .. $o{workers} - 1;

        printf $tsv "%.1f\t%.0f\t%.2f\t%.2f\t%.3f\t%.3f\t%d\t%d\t%s\t%s"
                    . "%s\n",
                    $x->{t}, $rate[$i], sum(@w) / 1024, $x->{anon} / 1024,
                    ($x->{mdb} // 0) / (1 << 20),
                    ($x->{map_used} // 0) / (1 << 20),
                    $x->{readers_used} // 0, $x->{keys} // 0,
                    defined $x->{live}
                    ? sprintf('%.3f', $x->{live} / (1 << 20)) : '-',
                    $x->{lag} // '-',
                    join('', map { sprintf("\t%.2f", $_ / 1024) } @w);
    }

    close $tsv;

    open my $md, '>', "$out/soak.md" or die "soak: $out/soak.md: $!\n";

    printf $md "# Soak: %s\n\n", $o{duration};
    printf $md "`make soak DURATION=%s`, %s UTC, %d CPUs"
               . " (bench/soak.pl; chart: soak.png, samples: soak.tsv)\n\n",
               $o{duration}, POSIX::strftime('%Y-%m-%d %H:%M', gmtime),
               scalar(() = Apikey::Harness::slurp('/proc/cpuinfo')
                           =~ /^processor\s/mg);
    print $md "| | |\n|---|---|\n";
    print $md "| $_->[0] | $_->[1] |\n" for @rows;
    print $md <<"EOF";

Wrong decisions: a valid key rejected, a key accepted after its revoke
returned, a key never valid accepted (Apikey::Load, and the prober).
Revocation latency: from `apikeyctl revoke` returning to the prober's
first 401 for that key, on a keep-alive connection.  Warmed up: the
sample nearest the end of the warm-up.  Growth: the highest value of
the last window against the highest of the window right after the
warm-up; flat within 10% or 4 MB (1 MB for the anonymous part of the
RSS).  data.mdb and map used are the high-water mark of the pages
written; pages in use leave out the free ones.
EOF
    close $md;

    if (!$o{'no-chart'}) {
        my $rc = system('gnuplot', '-e',
                        sprintf("dat='%s/soak.tsv'; out='%s/soak.png';"
                                . " warmup=%.1f; workers=%d; duration=%.0f",
                                $out, $out, $warmup, $o{workers}, $served),
                        "$root/bench/soak.gp");

        print "soak: gnuplot failed\n" if $rc != 0;
    }
}

exit(@fail ? 1 : 0);
