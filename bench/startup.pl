#!/usr/bin/perl
#
# nginx start-up time and worker memory.  Starts nginx (master and one
# worker, "daemon off"), measures the time from exec to the port
# answering its first request, sends 1,000 keep-alive requests with the given
# header, reads /proc/WORKER/smaps_rollup and stops nginx.
#
# usage: startup.pl --prefix DIR --conf FILE --port PORT [--runs R]
#            [--header H] [--requests N] [--nginx PATH]
#
# Output, one line per run (tab-separated):
#   RUN  STARTUP_S  REQUESTS  PRIVATE_KB  RSS_KB  PSS_KB  MASTER_RSS_KB
# where PRIVATE_KB is the worker's Private_Clean + Private_Dirty.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Getopt::Long;
use Time::HiRes qw(time sleep);

use Bench qw(wait_port run_requests spawn stop_pid worker_of smaps);

my %o = (runs => 3, requests => 1000,
         nginx => $ENV{NGINX} // '/usr/sbin/nginx');
GetOptions(\%o, 'prefix=s', 'conf=s', 'port=i', 'runs=i', 'header=s',
           'requests=i', 'nginx=s')
    or die "usage: see $0\n";
for (qw(prefix conf port)) {
    die "startup: --$_ is required\n" unless defined $o{$_};
}

if (defined wait_port($o{port}, 0.01)) {
    die "startup: port $o{port} is already in use\n";
}

for my $run (1 .. $o{runs}) {
    my $t0 = time;
    my $pid = spawn($o{nginx}, '-p', $o{prefix}, '-c', $o{conf},
                    { stdout => "$o{prefix}/logs/stdout.log",
                      stderr => "$o{prefix}/logs/stdout.log" });
    my $up = wait_port($o{port}, 1800, $pid);
    if (!defined $up) {
        stop_pid($pid, 5);
        die "startup: nginx did not start (see $o{prefix}/logs/)\n";
    }
    # until the first response: the master listens before the worker runs
    run_requests($o{port}, 1, defined $o{header} ? [$o{header}] : []);
    my $startup = time - $t0;

    my $st = run_requests($o{port}, $o{requests},
                          defined $o{header} ? [$o{header}] : []);
    if (($st->{200} // 0) != $o{requests}) {
        stop_pid($pid, 30);
        die "startup: expected $o{requests} responses 200, got "
            . join(' ', map { "$_:$st->{$_}" } sort keys %$st) . "\n";
    }

    my $worker = worker_of($pid) or die "startup: no worker process\n";
    my $w = smaps($worker);
    my $m = smaps($pid);

    printf "%d\t%.3f\t%d\t%d\t%d\t%d\t%d\n", $run, $startup, $o{requests},
        $w->{Private}, $w->{Rss} // 0, $w->{Pss} // 0, $m->{Rss} // 0;

    stop_pid($pid, 60);

    # wait until the port is free again (bounded)
    for (1 .. 500) {
        last unless defined wait_port($o{port}, 0.01);
        sleep 0.02;
    }
}
