#!/usr/bin/perl

# Tests apikey_metrics (issue 9): the Prometheus text format, parsed by a
# real parser (python3-prometheus-client), with four workers.  Known
# numbers of requests of every $apikey_status go to two servers from
# forked clients; the counters equal them exactly, summed over the
# workers' slots.  A worker killed leaves its counts, and after "nginx
# -s reload" (one server renamed) the counters go on from where they
# were.  The database gauges equal "apikeyctl stats --format json", and
# the follower's entries of meta are exported once they are there.  The
# database deleted gives apikey_db_usable 0 and 503s counted as "error";
# made again, it is reopened and counted so.  The metrics location is
# open unless protected; apikey_metrics with an argument, twice, or
# outside a location is a configuration error.  With three server blocks
# this file never grows the array of rows past its first allocation (4):
# t/apikey_metrics_servers.t has 70 server blocks, a reload from 4 to 8,
# and the label values that are not UTF-8.

use strict;
use warnings;

use Test::More;

use JSON::PP qw(decode_json);
use POSIX qw();
use Time::HiRes qw(sleep);
use Time::Local qw(timegm);

use Apikey::Harness qw(http_get scaled);

my $t = Apikey::Harness->new()->require_all();

my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';

plan(skip_all => 'python3-prometheus-client is not installed '
                 . '(apt-get install python3-prometheus-client)')
    if system("$python -c 'import prometheus_client.parser' "
              . '>/dev/null 2>&1') != 0;

my $dir = $t->prefix();
my $workers = 4;

# the parser: one line a family ("family NAME TYPE") and one a sample
# ("sample NAME LABELS VALUE", labels sorted, "k=v" joined by ",")

open my $fh, '>', "$dir/parse.py" or die $!;
print $fh <<'EOF';
import sys
from prometheus_client.parser import text_string_to_metric_families

for fam in text_string_to_metric_families(sys.stdin.read()):
    print("family\t%s\t%s" % (fam.name, fam.type))
    for s in fam.samples:
        labels = ",".join("%s=%s" % (k, s.labels[k]) for k in sorted(s.labels))
        v = s.value
        print("sample\t%s\t%s\t%s" % (s.name, labels,
                                      "%d" % v if v == int(v) else repr(v)))
EOF
close $fh;

$t->init_db();

# a key for each outcome

my %key;

$key{valid} = $t->gen('--id', 'valid');
$key{admin} = $t->gen('--id', 'admin', '--scopes', 'admin,metrics');
$key{expired} = $t->gen('--id', 'expired', '--expires',
                        '2020-01-01T00:00:00Z');
$key{not_yet_valid} = $t->gen('--id', 'later', '--not-before', '30d');
$key{disabled} = $t->gen('--id', 'disabled');
$t->ctl_ok('disable', 'disabled');

$t->init_db({ db => "$dir/other" });
($key{unknown}) = split /\n/, $t->ctl_ok({ db => "$dir/other" }, 'gen');

# the generated shape with a wrong checksum
($key{malformed} = $key{valid}) =~ s/(.)$/$1 eq 'A' ? 'B' : 'A'/e;

# what a status is sent as: a location and a key (none: missing)

my %send = (
    valid         => ['/', 'valid', 200],
    missing       => ['/', undef, 401],
    malformed     => ['/', 'malformed', 401],
    unknown       => ['/', 'unknown', 401],
    expired       => ['/', 'expired', 401],
    not_yet_valid => ['/', 'not_yet_valid', 401],
    disabled      => ['/', 'disabled', 401],
    forbidden     => ['/admin', 'valid', 403],
);

my @statuses = qw(valid missing malformed unknown expired not_yet_valid
                  disabled forbidden error);

# lookups: the requests that reach the database
my %looks = map { $_ => 1 } qw(valid unknown expired not_yet_valid disabled
                                forbidden);

sub config {
    my ($b_name) = @_;

    # reuseport: a listening socket a worker, so that each takes some

    $t->write_config(<<"EOF", workers => $workers);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%% reuseport;
        server_name a.example www.a.example;

        location / {
            apikey on;
            add_header X-Worker \$pid always;
            empty_gif;
        }

        location /admin {
            apikey on;
            apikey_scope admin;
            empty_gif;
        }

        location /metrics-protected {
            apikey on;
            apikey_scope metrics;
            apikey_metrics;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_1%% reuseport;
        server_name $b_name;

        apikey on;

        location / {
            add_header X-Worker \$pid always;
            empty_gif;
        }

        location /admin {
            apikey_scope admin;
            empty_gif;
        }
    }

    server {
        listen 127.0.0.1:%%PORT_2%%;
        server_name metrics;

        location = /metrics {
            apikey_metrics;
        }
    }
EOF
}

# sends $plan->{status} requests for each status to $port from four
# clients; returns the answers by status and the workers that answered

sub send_all {
    my ($port, $plan) = @_;

    my @jobs;

    for my $status (sort keys %$plan) {
        my ($uri, $k) = @{$send{$status}};
        push @jobs, [$status, $uri, $k] for 1 .. $plan->{$status};
    }

    my @kids;
    my $clients = 4;

    for my $c (0 .. $clients - 1) {
        pipe(my $r, my $w) or die $!;
        my $pid = fork() // die "fork: $!";

        if ($pid == 0) {
            close $r;
            for my $i (grep { $_ % $clients == $c } 0 .. $#jobs) {
                my ($status, $uri, $k) = @{$jobs[$i]};
                my $res = http_get($port, $uri,
                                   defined $k ? ('X-API-Key', $key{$k}) : ());
                my $worker = $res->{headers}{'x-worker'}[0] // '-';
                print $w "$status $res->{status} $worker\n";
            }
            close $w;
            POSIX::_exit(0);
        }

        close $w;
        push @kids, [$pid, $r];
    }

    my (%got, %by);

    for my $kid (@kids) {
        my ($pid, $r) = @$kid;
        while (my $line = <$r>) {
            my ($status, $code, $worker) = split ' ', $line;
            $got{"$status $code"}++;
            $by{$worker}++ if $worker ne '-';
        }
        waitpid($pid, 0);
    }

    return (\%got, \%by);
}

sub scrape {
    my ($uri, @headers) = @_;

    my $r = http_get($t->port(2), $uri // '/metrics', @headers);

    return $r unless $r->{status} == 200;

    open my $out, '>', "$dir/scrape.txt" or die $!;
    print $out $r->{body};
    close $out;

    my (%family, %sample);

    for (`$python $dir/parse.py < $dir/scrape.txt 2>&1`) {
        chomp;
        my ($kind, $name, @rest) = split /\t/, $_, -1;
        if ($kind eq 'family') {
            $family{$name} = $rest[0];
        } elsif ($kind eq 'sample') {
            $sample{$rest[0] eq '' ? $name : "$name\{$rest[0]\}"}
                = $rest[1];
        } else {
            fail("parser: $_");
        }
    }

    $r->{family} = \%family;
    $r->{sample} = \%sample;

    return $r;
}

sub requests {
    my ($m, $server, $status) = @_;
    return $m->{sample}{"apikey_requests_total\{server=$server,"
                        . "status=$status\}"};
}

# every answer as planned; the counters as sent, all of them exactly

sub check_counts {
    my ($m, $expect, $what) = @_;

    my @bad;

    for my $server (sort keys %$expect) {
        for my $status (@statuses) {
            my $want = $expect->{$server}{$status} // 0;
            my $got = requests($m, $server, $status) // 'none';
            push @bad, "$server $status: $got, sent $want"
                if $got ne $want;
        }
    }

    is(join('; ', @bad), '', "$what: requests counted as sent");
}

sub check_answers {
    my ($got, $plan, $what) = @_;

    my %want = map { ("$_ $send{$_}[2]" => $plan->{$_}) } keys %$plan;

    is_deeply($got, \%want, "$what: every request answered as planned");
}

config('b.example');
$t->start();

# all four workers up, each with its reader slot

for (1 .. scaled(100)) {
    my @w = $t->workers();
    last if @w == $workers;
    sleep 0.05;
}

my @first = $t->workers();
is(scalar @first, $workers, "$workers workers");

# the format itself

my $m = scrape();

is($m->{status}, 200, 'metrics answered without a key');
like($m->{headers}{'content-type'}[0],
     qr{^text/plain; version=0\.0\.4; charset=utf-8$}, 'content type');
is($m->{family}{apikey_requests}, 'counter', 'requests: a counter');
is($m->{family}{apikey_lookups}, 'counter', 'lookups: a counter');
is($m->{family}{apikey_lookup_errors}, 'counter', 'lookup errors: a counter');
is($m->{family}{apikey_env_reopens}, 'counter', 'reopens: a counter');
is($m->{family}{apikey_db_usable}, 'gauge', 'usable: a gauge');
is($m->{sample}{"apikey_db_usable\{db=$dir/db\}"}, 1, 'database usable');
ok(!exists $m->{family}{apikey_db_follow_version},
   'no follow gauges without a follower');
my $help = '# HELP apikey_requests_total \S.*\n';
like($m->{body}, qr/^$help# TYPE apikey_requests_total counter\n/m,
     'help and type lines');

my $base_lookups = $m->{sample}{apikey_lookups_total};
is($base_lookups, 0, 'no lookups yet');

# requests of every status, to two servers

my %plan_a = (valid => 40, missing => 7, malformed => 5, unknown => 9,
              expired => 4, not_yet_valid => 3, disabled => 6,
              forbidden => 8);
my %plan_b = (valid => 25, missing => 11, malformed => 2, unknown => 3,
              expired => 6, not_yet_valid => 1, disabled => 2,
              forbidden => 5);

my ($got_a, $by_a) = send_all($t->port(0), \%plan_a);
my ($got_b, $by_b) = send_all($t->port(1), \%plan_b);

check_answers($got_a, \%plan_a, 'server a');
check_answers($got_b, \%plan_b, 'server b');

my %workers_seen = (%$by_a, %$by_b);
cmp_ok(scalar keys %workers_seen, '>', 1,
       'answers came from more than one worker');
diag('answers by worker: '
     . join(' ', map { "$_=$workers_seen{$_}" } sort keys %workers_seen));

my %expect = ('a.example' => {%plan_a}, 'b.example' => {%plan_b});

$m = scrape();
check_counts($m, \%expect, 'four workers');

is(join(' ', grep { /server=metrics/ } keys %{$m->{sample}}), '',
   'no row for a server where apikey is off');

my $looks = 0;
$looks += ($looks{$_} ? $plan_a{$_} + $plan_b{$_} : 0) for keys %plan_a;

is($m->{sample}{apikey_lookups_total}, $looks, 'lookups counted');
is($m->{sample}{apikey_lookup_errors_total}, 0, 'no lookup errors');
is($m->{sample}{apikey_env_reopens_total}, 0, 'no reopens');

# the gauges: what apikeyctl stats says

my $stats = decode_json($t->ctl_ok('stats', '--format', 'json'));

$m = scrape();

my %gauge = (
    apikey_db_keys => $stats->{keys},
    apikey_db_generation => $stats->{generation},
    apikey_db_map_size_bytes => $stats->{map_size},
    apikey_db_map_used_bytes => $stats->{map_used},
    apikey_db_readers => $stats->{readers_used},
    apikey_db_readers_max => $stats->{readers_max},
);

for my $g (sort keys %gauge) {
    is($m->{sample}{"$g\{db=$dir/db\}"}, $gauge{$g}, "$g as apikeyctl stats");
}

is($stats->{readers_used}, $workers, 'a reader slot a worker');

my ($y, $mo, $d, $h, $mi, $s) = $stats->{changed}
    =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/;
my $changed = timegm($s, $mi, $h, $d, $mo - 1, $y);

is($m->{sample}{"apikey_db_last_change_timestamp_seconds\{db=$dir/db\}"},
   $changed, 'last change time as apikeyctl stats');

# what a follower writes in meta: gauges of their own (written here with
# mdb_load, as apikeyctl follow would, u64 little-endian)

SKIP: {
    skip 'mdb_load not installed (lmdb-utils)', 2
        if system('mdb_load -V >/dev/null 2>&1') != 0;

    my $u64 = sub { join '', map { sprintf '\\%02x', $_ }
                                unpack 'C8', pack 'Q<', $_[0] };

    open my $load, '>', "$dir/follow.txt" or die $!;
    print $load "VERSION=3\nformat=print\ndatabase=meta\ntype=btree\n"
                . "HEADER=END\n"
                . " follow_version\n " . $u64->(4242) . "\n"
                . " follow_synced\n " . $u64->(1796000000) . "\n"
                . "DATA=END\n";
    close $load;

    system('mdb_load', '-s', 'meta', '-f', "$dir/follow.txt", $t->db()) == 0
        or die "mdb_load failed";

    $m = scrape();

    is($m->{sample}{"apikey_db_follow_version\{db=$dir/db\}"}, 4242,
       'follow_version exported');
    is($m->{sample}{"apikey_db_follow_synced_timestamp_seconds"
                    . "\{db=$dir/db\}"}, 1796000000,
       'follow_synced exported');
}

# a worker killed: its counts stay in its slot, and the worker started
# in its place takes a slot (maybe that one) and adds to it

my $victim = $first[0];
kill 'KILL', $victim;

my @now;

for (1 .. scaled(200)) {
    @now = $t->workers();
    last if @now == $workers && !grep { $_ == $victim } @now;
    sleep 0.05;
}

ok(@now == $workers && !grep({ $_ == $victim } @now),
   'a worker killed, another started');

my %plan_k = (valid => 12, missing => 3, unknown => 2, forbidden => 1);

($got_a) = send_all($t->port(0), \%plan_k);
check_answers($got_a, \%plan_k, 'server a after a kill');

$expect{'a.example'}{$_} += $plan_k{$_} for keys %plan_k;
$looks += ($looks{$_} ? $plan_k{$_} : 0) for keys %plan_k;

$m = scrape();
check_counts($m, \%expect, 'a worker killed');
is($m->{sample}{apikey_lookups_total}, $looks, 'lookups after a kill');

@first = @now;

# a reload, server b renamed: the zone and its counts stay, the old
# name keeps its counts, the new one counts from 0

config('b2.example');

kill 'HUP', $t->{pid};

my @second;

for (1 .. scaled(200)) {
    @second = $t->workers();
    my %old = map { $_ => 1 } @first;
    last if @second == $workers && !grep { $old{$_} } @second;
    sleep 0.05;
}

my %old = map { $_ => 1 } @first;
is(scalar(grep { !$old{$_} } @second), $workers,
   'reloaded: four new workers, the old ones gone');

my %plan_a2 = (valid => 17, missing => 2, malformed => 1, unknown => 2,
               expired => 1, not_yet_valid => 2, disabled => 1,
               forbidden => 3);
my %plan_b2 = (valid => 9, missing => 4, unknown => 1, forbidden => 2);

($got_a, $by_a) = send_all($t->port(0), \%plan_a2);
($got_b, $by_b) = send_all($t->port(1), \%plan_b2);

check_answers($got_a, \%plan_a2, 'server a after reload');
check_answers($got_b, \%plan_b2, 'server b2 after reload');

$expect{'a.example'}{$_} += $plan_a2{$_} for keys %plan_a2;
$expect{'b2.example'} = {%plan_b2};

$m = scrape();
check_counts($m, \%expect, 'across a reload');

$looks += ($looks{$_} ? $plan_a2{$_} : 0) for keys %plan_a2;
$looks += ($looks{$_} ? $plan_b2{$_} : 0) for keys %plan_b2;

is($m->{sample}{apikey_lookups_total}, $looks, 'lookups across a reload');

$stats = decode_json($t->ctl_ok('stats', '--format', 'json'));
is($stats->{readers_used}, $workers, 'the old workers gave their slots back');

# requests while nginx reloads three times: old and new workers count at
# once, each in its own slot; every answered request is counted once (a
# request dropped by a reload, if any, may or may not have been)

{
    my $n = 150;

    pipe(my $r, my $w) or die $!;
    my $pid = fork() // die "fork: $!";

    if ($pid == 0) {
        close $r;
        for (1 .. $n) {
            my $res = eval { http_get($t->port(0), '/', 'X-API-Key',
                                      $key{valid}) };
            print $w (($res && $res->{status}) || 0), "\n";
        }
        close $w;
        POSIX::_exit(0);
    }

    close $w;

    for (1 .. 3) {
        sleep 0.2;
        kill 'HUP', $t->{pid};
    }

    my %st;
    while (my $line = <$r>) {
        chomp $line;
        $st{$line}++;
    }
    waitpid($pid, 0);

    my $answered = $st{200} // 0;
    my $dropped = $n - $answered;

    is(join(',', sort grep { $_ != 200 && $_ != 0 } keys %st), '',
       'during reloads: 200 or no answer');
    diag("during reloads: $answered answered, $dropped dropped");

    $expect{'a.example'}{valid} += $answered;

    $m = scrape();

    my $counted = requests($m, 'a.example', 'valid');
    ok($counted >= $expect{'a.example'}{valid}
       && $counted <= $expect{'a.example'}{valid} + $dropped,
       'during reloads: every answered request counted once')
        or diag("counted $counted, answered $expect{'a.example'}{valid}");

    # the counts the rest of the test expects: the dropped ones settled

    $expect{'a.example'}{valid} = $counted;
}

# the metrics location protected as any other: a key with a scope

is(http_get($t->port(0), '/metrics-protected')->{status}, 401,
   'protected metrics: no key');
is(http_get($t->port(0), '/metrics-protected', 'X-API-Key', $key{valid})
   ->{status}, 403, 'protected metrics: a key without the scope');

my $p = http_get($t->port(0), '/metrics-protected', 'X-API-Key', $key{admin});
is($p->{status}, 200, 'protected metrics: a key with the scope');
like($p->{body},
     qr/^apikey_requests_total\{server="a\.example",status="valid"\} \d+$/m,
     'protected metrics: the counters');

is(http_raw_post(), 405, 'POST is not allowed');

my $head = Apikey::Harness::http_raw($t->port(2),
    "HEAD /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
is($head->{status}, 200, 'HEAD');
is($head->{body}, '', 'HEAD: no body');

sub http_raw_post {
    return Apikey::Harness::http_raw($t->port(2),
        "POST /metrics HTTP/1.0\r\nHost: localhost\r\n"
        . "Content-Length: 2\r\n\r\nab")->{status};
}

# the database deleted: 503 for the keys, counted as "error", and
# usable 0; a request already in a worker's map may still be answered

$m = scrape();
my %before = map { $_ => requests($m, 'a.example', $_) } @statuses;

system('rm', '-rf', $t->db()) == 0 or die;

my %answers;

for (1 .. scaled(200)) {
    my $r = http_get($t->port(0), '/', 'X-API-Key', $key{valid});
    $answers{$r->{status}}++;
    last if ($answers{503} // 0) >= 10;
    sleep 0.02;
}

is($answers{503}, 10, 'database deleted: 503');
is(join(',', sort grep { $_ != 200 && $_ != 503 } keys %answers), '',
   'database deleted: 200 or 503 only');

$m = scrape();

is($m->{sample}{"apikey_db_usable\{db=$dir/db\}"}, 0,
   'database deleted: usable 0');
is(requests($m, 'a.example', 'error') - $before{error}, $answers{503},
   'database deleted: the 503s counted as error');
is(requests($m, 'a.example', 'valid') - $before{valid}, $answers{200} // 0,
   'database deleted: the 200s counted as valid');
ok(!exists $m->{sample}{"apikey_db_keys\{db=$dir/db\}"},
   'database deleted: no other gauge');

# made again: the workers open it again by themselves, and say so

$t->init_db();
my $again = $t->gen('--id', 'again');

my $status = 0;

for (1 .. scaled(200)) {
    $status = http_get($t->port(0), '/', 'X-API-Key', $again)->{status};
    last if $status == 200;
    sleep 0.05;
}

is($status, 200, 'database made again: served');

# the worker that scrapes may have failed to open the database less than
# a second ago (the scrape above): a database not open is tried at most
# once a second, scrapes too

for (1 .. scaled(60)) {
    $m = scrape();
    last if ($m->{sample}{"apikey_db_usable\{db=$dir/db\}"} // 0) == 1;
    sleep 0.05;
}

is($m->{sample}{"apikey_db_usable\{db=$dir/db\}"}, 1,
   'database made again: usable 1');
is($m->{sample}{"apikey_db_keys\{db=$dir/db\}"}, 1,
   'database made again: its keys');
cmp_ok($m->{sample}{apikey_env_reopens_total}, '>=', 1,
       'database made again: reopens counted');
diag("reopens: $m->{sample}{apikey_env_reopens_total}");

$t->stop();

like($t->error_log(), qr/apikey database "\Q$dir\E\/db" is not usable/,
     'database deleted: logged');

# the error log: the kill, as the master reports it, and nothing worse

my $log = $t->error_log();

like($log, qr/worker process $victim exited on signal 9/, 'the kill logged');
$log =~ s/^.*worker process $victim exited on signal 9.*\n//mg;

is(join("\n", $log =~ /^.*\[(?:alert|emerg)\].*$/mg), '',
   'no other alert or emerg in error log');
is(join("\n", $log =~ /^.*(?:exited\ on\ signal|Sanitizer|core\ dumped)
                       .*$/mgx), '', 'no crash in error log');

# configuration errors

my $c = Apikey::Harness->new();

my %bad = (
    'an argument' => ['location / { apikey_metrics on; }',
                      qr/invalid number of arguments in "apikey_metrics"/],
    'server context' => ['apikey_metrics; location / { }',
                         qr/"apikey_metrics" directive is not allowed here/],
    'twice' => ['location / { apikey_metrics; apikey_metrics; }',
                qr/"apikey_metrics" directive is duplicate/],
);

for my $what (sort keys %bad) {
    my ($conf, $re) = @{$bad{$what}};
    $c->write_config("server { listen 127.0.0.1:%%PORT%%; $conf }\n");
    my ($rc, $out) = $c->nginx_test();
    isnt($rc, 0, "$what: nginx -t fails");
    like($out, $re, "$what: the message");
}

$c->write_config("apikey_metrics;\n"
                 . "server { listen 127.0.0.1:%%PORT%%; }\n");
my ($rc, $out) = $c->nginx_test();
like($out, qr/"apikey_metrics" directive is not allowed here/,
     'http context: not allowed');

$c->write_config("server { listen 127.0.0.1:%%PORT%%;\n"
                 . "location /m { apikey_metrics; } }\n");
($rc, $out) = $c->nginx_test();
is($rc, 0, 'alone in a location: nginx -t passes')
    or diag($out);

done_testing();
