#!/usr/bin/perl
#
# Revocation latency: the time from `apikeyctl revoke ID` returning to the
# first rejected request, against a running nginx.  For each run: a new
# key (apikeyctl gen --id), a check that nginx accepts it, the revoke,
# then requests one after the other until one is rejected (bounded).
#
# usage: revoke.pl --port PORT --runs R -- APIKEYCTL -d DIR -s SECRET
#
# Output, one line per run (tab-separated):
#   RUN  LATENCY_MS  ACCEPTED_AFTER_REVOKE  REVOKE_MS  REQUEST_MS
# (REQUEST_MS: one request with the key before the revoke, the same way)

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";
use Getopt::Long;
use Time::HiRes qw(time);

use Bench qw(run_requests);

my %o = (runs => 5);
GetOptions(\%o, 'port=i', 'runs=i') or die "usage: see $0\n";
my @ctl = @ARGV;
die "revoke: --port and the apikeyctl command are required\n"
    unless $o{port} && @ctl;

for my $run (1 .. $o{runs}) {
    my $id = "revoke-$$-$run";
    open(my $g, '-|', @ctl, 'gen', '--id', $id) or die "apikeyctl: $!\n";
    my $key = <$g>;
    close $g or die "revoke: apikeyctl gen failed\n";
    chomp $key;
    my $h = ["X-API-Key: $key"];

    my $ts = time;
    my $st = run_requests($o{port}, 1, $h);
    my $request = time - $ts;
    die "revoke: a new key was not accepted\n" unless $st->{200};

    open(my $out, ">&", \*STDOUT) or die;
    open(STDOUT, ">", "/dev/null") or die;
    my $t0 = time;
    my $rc = system(@ctl, "revoke", $id);
    my $t1 = time;
    open(STDOUT, ">&", $out) or die;
    die "revoke: apikeyctl revoke failed\n" if $rc != 0;

    my ($accepted, $latency) = (0, undef);
    while (time - $t1 < 10) {
        $st = run_requests($o{port}, 1, $h);
        if ($st->{200}) {
            $accepted++;
            next;
        }
        $latency = time - $t1;
        last;
    }
    die "revoke: the key was still accepted 10 s after the revoke\n"
        unless defined $latency;

    printf "%d\t%.3f\t%d\t%.1f\t%.3f\n", $run, $latency * 1000, $accepted,
        ($t1 - $t0) * 1000, $request * 1000;
}
