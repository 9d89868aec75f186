#!/usr/bin/perl

# Tests apikey_metrics with more workers than slots (issue 9): the zone
# has 128 slots, one a process; with 132 workers the last ones to claim
# count in the shared slot, with atomic increments, and say so once in
# the error log.  The counters still equal the requests sent, whichever
# workers answered them.

use strict;
use warnings;

use Test::More;

use POSIX qw();
use Time::HiRes qw(sleep);

use Apikey::Harness qw(http_get scaled);

my $t = Apikey::Harness->new()->require_all();

plan(skip_all => 'slow under valgrind: 132 workers')
    if $ENV{TEST_NGINX_VALGRIND};

my $workers = 132;
my $slots = 128;

$t->init_db();

my $key = $t->gen('--id', 'valid');

# no reuseport: any worker may take a connection

$t->write_config(<<"EOF", workers => $workers);
    apikey_db %%DB%%;
    apikey_secret %%SECRET%%;

    server {
        listen 127.0.0.1:%%PORT%%;
        server_name slots;

        location / {
            apikey on;
            add_header X-Worker \$pid always;
            empty_gif;
        }

        location = /metrics {
            apikey off;
            apikey_metrics;
        }
    }
EOF

$t->start();

# every worker has claimed its slot at start: the notices are there

my $log = '';

for (1 .. scaled(200)) {
    $log = $t->error_log();
    last if ($log =~ s/all $slots slots are taken//g) >= $workers - $slots;
    sleep 0.05;
}

$log = $t->error_log();
my $notice = "apikey_metrics: all $slots slots are taken, counting in the "
             . 'shared one';
my $notices = () = $log =~ /\Q$notice\E/g;

is($notices, $workers - $slots,
   'the workers past the slots use the shared one, and say so');

# requests from a few clients, with and without the key, in rounds
# until some were answered by a worker in the shared slot

my %shared = map { $_ => 1 }
    $log =~ /(\d+)#\d+: apikey_metrics: all $slots slots are taken/g;

my $clients = 4;
my $each = 50;
my (%got, %by);

sub round {
    my @kids;

    for my $c (1 .. $clients) {
        pipe(my $r, my $w) or die $!;
        my $pid = fork() // die "fork: $!";

        if ($pid == 0) {
            close $r;
            for my $i (1 .. $each) {
                my @h = ($i % 5) ? ('X-API-Key', $key) : ();
                my $res = http_get($t->port(0), '/', @h);
                my $worker = $res->{headers}{'x-worker'}[0] // '-';
                print $w "$res->{status} $worker\n";
            }
            close $w;
            POSIX::_exit(0);
        }

        close $w;
        push @kids, [$pid, $r];
    }

    for my $kid (@kids) {
        my ($pid, $r) = @$kid;
        while (my $line = <$r>) {
            my ($status, $worker) = split ' ', $line;
            $got{$status}++;
            $by{$worker}++;
        }
        waitpid($pid, 0);
    }
}

my ($rounds, $by_shared) = (0, 0);

while ($rounds++ < 10) {
    round();
    $by_shared = 0;
    $by_shared += $by{$_} for grep { $shared{$_} } keys %by;
    last if $by_shared;
}

cmp_ok($by_shared, '>', 0, 'some requests answered by the shared slot');
diag("$rounds rounds, workers that answered: " . scalar(keys %by)
     . ", requests answered in the shared slot: $by_shared");

is($got{200}, $rounds * $clients * $each * 4 / 5, 'valid keys answered 200');
is($got{401}, $rounds * $clients * $each / 5, 'missing keys answered 401');

my $m = http_get($t->port(0), '/metrics');

is($m->{status}, 200, 'metrics');

my ($valid) = $m->{body}
    =~ /^apikey_requests_total\{server="slots",status="valid"\} (\d+)$/m;
my ($missing) = $m->{body}
    =~ /^apikey_requests_total\{server="slots",status="missing"\} (\d+)$/m;

is($valid, $got{200}, 'valid requests counted, slots and shared one');
is($missing, $got{401}, 'missing requests counted, slots and shared one');

$t->stop();
$t->check_log();

done_testing();
