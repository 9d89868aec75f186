#!/usr/bin/perl
#
# Instructions per request of one nginx configuration, with callgrind.
#
# nginx runs as a single process (the configuration must have
# "master_process off; daemon off;") under
# valgrind --tool=callgrind --instr-atstart=no, so that start-up (loading
# a big map, say) is not instrumented.  Then, for every case (a name and
# the request headers to send):
#
#   callgrind_control -i on; W warm-up requests;
#   for N in N1, N2: callgrind_control -z; N keep-alive requests on one
#   new connection; callgrind_control -d; read the total Ir of the dump
#
# and prints (Ir(N2) - Ir(N1)) / (N2 - N1): the connection set-up and the
# dump itself cancel out.
#
# usage: cgmeasure.pl --prefix DIR --conf FILE --port PORT --out DIR
#            [--counts N1,N2] [--warm W] [--timeout S] [--nginx PATH]
#            NAME=STATUS[=HEADER] ...
#
# Output, one line per case (tab-separated):
#   NAME  STATUS  IR_PER_REQUEST  IR(N1)  IR(N2)  N1  N2  DUMP(N1)  DUMP(N2)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Getopt::Long;
use Time::HiRes qw(sleep time);

use Bench qw(wait_port run_requests spawn stop_pid);

my %o = (counts => '2000,12000', warm => 300, timeout => 900,
         nginx => $ENV{NGINX} // '/usr/sbin/nginx');
GetOptions(\%o, 'prefix=s', 'conf=s', 'port=i', 'out=s', 'counts=s',
           'warm=i', 'timeout=i', 'nginx=s')
    or die "usage: see $0\n";
for (qw(prefix conf port out)) {
    die "cgmeasure: --$_ is required\n" unless defined $o{$_};
}

my ($n1, $n2) = split /,/, $o{counts};
die "cgmeasure: --counts N1,N2 with N1 < N2\n"
    unless $n1 && $n2 && $n1 < $n2;

my @cases;
for my $arg (@ARGV) {
    my ($name, $expect, $header) = split /=/, $arg, 3;
    die "cgmeasure: bad case \"$arg\"\n" unless $name && $expect;
    push @cases, [$name, $expect, defined $header ? [$header] : []];
}

system('mkdir', '-p', $o{out}) == 0 or die;
unlink glob("$o{out}/cg.out*");

my $log = "$o{out}/valgrind.log";
my $t0 = time;
my $pid = spawn('valgrind', '--tool=callgrind', '--instr-atstart=no',
                "--callgrind-out-file=$o{out}/cg.out",
                $o{nginx}, '-p', $o{prefix}, '-c', $o{conf},
                { stdout => $log, stderr => $log });

my $waited = wait_port($o{port}, $o{timeout}, $pid);
if (!defined $waited) {
    stop_pid($pid, 5);
    die "cgmeasure: nginx under valgrind did not start listening on port "
        . "$o{port} (see $log)\n";
}
printf STDERR "cgmeasure: nginx up under valgrind in %.1f s\n", $waited;

ctl('-i', 'on');

my %seen;
for my $c (@cases) {
    my ($name, $expect, $headers) = @$c;

    my $st = run_requests($o{port}, $o{warm}, $headers);
    check($name, $expect, $st, $o{warm});

    my (@ir, @dump);
    for my $n ($n1, $n2) {
        ctl('-z');
        $st = run_requests($o{port}, $n, $headers);
        check($name, $expect, $st, $n);
        sleep 0.3;      # let nginx finish the last request
        ctl('-d');
        my $file = new_dump();
        push @dump, $file;
        push @ir, total_ir($file);
    }

    printf "%s\t%s\t%.1f\t%s\t%s\t%d\t%d\t%s\t%s\n", $name, $expect,
        ($ir[1] - $ir[0]) / ($n2 - $n1), $ir[0], $ir[1], $n1, $n2, @dump;
}

stop_pid($pid, 30);
exit 0;


sub ctl {
    my @args = @_;
    my $out = `callgrind_control @args $pid 2>&1`;
    die "cgmeasure: callgrind_control @args $pid failed: $out\n" if $?;
}


sub check {
    my ($name, $expect, $st, $n) = @_;
    my $got = $st->{$expect} // 0;
    if ($got != $n) {
        die "cgmeasure: $name: expected $n responses $expect, got "
            . join(' ', map { "$_:$st->{$_}" } sort keys %$st) . "\n";
    }
}


# The dump file written by the last callgrind_control -d (bounded wait).

sub new_dump {
    for my $i (1 .. 500) {
        for my $f (sort glob("$o{out}/cg.out*")) {
            next if $seen{$f};
            next unless -s $f;
            my $text = Bench::read_file($f) // next;
            next unless $text =~ /^totals:/m;
            $seen{$f} = 1;
            return $f;
        }
        sleep 0.02;
    }
    die "cgmeasure: no new dump in $o{out}\n";
}


sub total_ir {
    my ($file) = @_;
    my $text = Bench::read_file($file);
    my ($ir) = $text =~ /^totals:\s*(\d+)/m;
    ($ir) = $text =~ /^summary:\s*(\d+)/m unless defined $ir;
    die "cgmeasure: no total in $file\n" unless defined $ir;
    return $ir;
}
